"""The dashboard answers only at its own addresses and names, and takes forms only from its
own origin: what a DNS-rebinding page or a page of another site makes a browser send is
refused, and nothing is promoted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelrail.config import load_settings
from modelrail.errors import ConfigError, InvalidInputError
from modelrail.ui import create_app
from modelrail.ui.guard import Origin, PublicName, parse_public_names, reached_origin
from tests.ui.conftest import MODEL, Fresh, Reply, UiServer, Visitor, running_ui

PROMOTE = f"/models/{MODEL}/promote"
FORM = {"version": "1", "to": "staging", "reason": "should not happen"}


def assert_not_promoted(fresh: Fresh) -> None:
    assert fresh.board() == {"dev": 3}
    with fresh.seeded.client() as client:
        assert client.history(MODEL, "staging") == []


def assert_refused(reply: Reply, status: int, words: str) -> None:
    """Refused with ``status``, saying ``words``."""
    assert reply.status == status, reply.text[-600:]
    assert words in reply.text, reply.text[-600:]


def at_the_check_page(fresh: Fresh) -> tuple[UiServer, Visitor]:
    """A dashboard on ``fresh``, and alice on the page that confirms promoting version 1 to
    staging: she has a session and the page's form token."""
    server = fresh.serve()
    alice = server.visitor()
    assert alice.get(f"{PROMOTE}?version=1&to=staging").status == 200
    return server, alice


def same_origin(server: UiServer) -> dict[str, str]:
    """What Chromium sends with a form of the dashboard's own pages."""
    return {
        "Origin": server.origin,
        "Sec-Fetch-Site": "same-origin",
        "Referer": f"{server.origin}{PROMOTE}?version=1&to=staging",
    }


# -- Host ----------------------------------------------------------------------------------------


def test_a_rebinding_page_can_neither_read_the_pages_nor_promote(fresh: Fresh) -> None:
    server, alice = at_the_check_page(fresh)
    evil = f"evil.example:{server.port}"

    read = server.get(f"/models/{MODEL}", headers={"Host": evil})
    assert_refused(read, 400, f"not reached as '{evil}'")
    assert read.headers["content-type"].startswith("text/plain")
    assert "--public-name evil.example" in read.text
    assert MODEL not in read.text and "csrf" not in read.text and "set-cookie" not in read.headers

    # What a page of http://evil.example:PORT sends once its name points at 127.0.0.1: its
    # own Host and Origin, same-origin, even with the session cookie and a valid form token.
    posted = alice.post(
        PROMOTE,
        FORM,
        headers={"Host": evil, "Origin": f"http://{evil}", "Sec-Fetch-Site": "same-origin"},
    )
    assert_refused(posted, 400, "not reached as")
    assert_not_promoted(fresh)


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:{port}",
        "evil.example",
        "127.0.0.1",  # port 80
        "127.0.0.1:1",
        "localhost.:{port}",
        "127.0.0.1.evil.example:{port}",
        "user@127.0.0.1:{port}",
        "127.0.0.1:{port}/x",
    ],
)
def test_a_host_that_is_not_the_dashboard_is_refused_with_400(ui: UiServer, host: str) -> None:
    for path in ("/", "/health", "/static/app.css", "/no/such/page"):
        sent = host.format(port=ui.port)
        assert_refused(ui.get(path, headers={"Host": sent}), 400, repr(sent))


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LocalHost:{port}"])
def test_the_loopback_names_at_the_right_port_are_the_dashboard(ui: UiServer, host: str) -> None:
    assert ui.get("/login", headers={"Host": host.format(port=ui.port)}).status == 200


def scope(host: list[str] | str, server: tuple[str, int | None] | None) -> dict[str, Any]:
    hosts = [host] if isinstance(host, str) else host
    return {
        "type": "http",
        "scheme": "http",
        "server": server,
        "headers": [(b"host", value.encode()) for value in hosts],
    }


def test_bound_to_every_address_it_answers_at_the_address_reached_and_its_names() -> None:
    # As bound to 0.0.0.0 (or ::): the connection arrived on 10.1.2.3 or on loopback.
    lan = ("10.1.2.3", 8765)
    assert reached_origin(scope("10.1.2.3:8765", lan), ()) == Origin("http", "10.1.2.3", 8765)
    mapped = ("::ffff:10.1.2.3", 8765)
    assert reached_origin(scope("10.1.2.3:8765", mapped), ()) == Origin("http", "10.1.2.3", 8765)
    six = ("::1", 8765)
    assert reached_origin(scope("[::1]:8765", six), ()) == Origin("http", "::1", 8765)
    assert reached_origin(scope("localhost:8765", six), ()) == Origin("http", "localhost", 8765)
    for refused in ("localhost:8765", "ml.example.org:8765", "10.1.2.3:80", "10.1.2.3"):
        with pytest.raises(InvalidInputError, match="--public-name"):
            reached_origin(scope(refused, lan), ())
    named = parse_public_names("ml.example.org")
    assert reached_origin(scope("ml.example.org:8765", lan), named) == Origin(
        "http", "ml.example.org", 8765
    )
    with pytest.raises(InvalidInputError, match="not one host name"):
        reached_origin(scope(["10.1.2.3:8765", "evil.example:8765"], lan), ())
    with pytest.raises(InvalidInputError, match="not one host name"):
        reached_origin(scope([], lan), ())
    # On a Unix socket, behind a proxy: only the public names.
    proxied = parse_public_names("https://ml.example.org")
    assert reached_origin(scope("ml.example.org", None), proxied) == Origin(
        "https", "ml.example.org", 443
    )
    with pytest.raises(InvalidInputError):
        reached_origin(scope("localhost:8765", None), proxied)


def test_public_names_are_parsed_strictly() -> None:
    assert parse_public_names(" ml.example.org, dash.test:8080  https://ML.example.org ") == (
        PublicName("ml.example.org"),
        PublicName("dash.test", 8080),
        PublicName("ml.example.org", 443, "https"),
    )
    assert parse_public_names(None) == () and parse_public_names("") == ()
    for wrong in ("ftp://x.org", "x.org:0", "x.org:99999", "https://x.org/path", "a@x.org", ":80"):
        with pytest.raises(ConfigError, match="public name"):
            parse_public_names(wrong)


def test_a_public_name_is_the_dashboard_only_when_configured(fresh: Fresh) -> None:
    plain = fresh.serve()
    assert plain.get("/login", headers={"Host": f"dash.test:{plain.port}"}).status == 400
    settings = fresh.seeded.settings
    app = create_app(settings, public_names="dash.test, https://ml.example.org")
    server = fresh.stack.enter_context(running_ui(app))
    assert server.get("/login", headers={"Host": f"dash.test:{server.port}"}).status == 200
    assert server.get("/login", headers={"Host": "dash.test"}).status == 400  # port 80
    behind_proxy = server.get("/login", headers={"Host": "ml.example.org"})
    assert behind_proxy.status == 200
    assert "Secure" in behind_proxy.headers["set-cookie"]  # reached by https

    visitor = server.visitor()
    refused = visitor.post(
        PROMOTE, FORM, headers={"Host": "ml.example.org", "Origin": "http://ml.example.org"}
    )
    assert_refused(refused, 403, "not from this dashboard (https://ml.example.org)")
    assert_not_promoted(fresh)
    done = visitor.post(
        PROMOTE,
        {"version": "1", "to": "staging"},
        headers={"Host": "ml.example.org", "Origin": "https://ml.example.org"},
    )
    assert done.status == 303
    assert fresh.board() == {"dev": 3, "staging": 1}


def test_public_names_come_from_modelrail_toml_or_the_environment(tmp_path: Path) -> None:
    (tmp_path / ".modelrail").mkdir()
    (tmp_path / "modelrail.toml").write_text('[ui]\npublic_name = "dash.test"\n', encoding="utf-8")
    assert load_settings(cwd=tmp_path, environ={}).ui_public_name == "dash.test"
    environ = {"MODELRAIL_UI_PUBLIC_NAME": "https://ml.example.org"}
    assert (
        load_settings(cwd=tmp_path, environ=environ).ui_public_name
        == environ["MODELRAIL_UI_PUBLIC_NAME"]
    )
    (tmp_path / "modelrail.toml").write_text('[ui]\npublic_name = "x.org:abc"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"public name 'x\.org:abc'"):
        create_app(load_settings(cwd=tmp_path, environ={}))  # refused before serving
    (tmp_path / "modelrail.toml").write_text('[ui]\npublic_nam = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown key 'public_nam' in \\[ui\\]"):
        load_settings(cwd=tmp_path, environ={})


# -- Origin ----------------------------------------------------------------------------------------


def test_an_https_origin_on_the_http_port_is_refused(fresh: Fresh) -> None:
    server = fresh.serve()
    origin = f"https://127.0.0.1:{server.port}"
    reply = server.visitor().post(
        PROMOTE, FORM, headers={"Origin": origin, "Sec-Fetch-Site": "same-origin"}
    )
    assert_refused(reply, 403, f"sent from {origin}, not from this dashboard ({server.origin})")
    assert_not_promoted(fresh)


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "http://evil.example:{port}",
        "http://127.0.0.1:1",
        "http://127.0.0.1",
        "http://localhost:{port}",  # an address of the dashboard, but not the one reached
        "http://127.0.0.1:{port}.evil.example",
        "http://127.0.0.1:{port}@evil.example",
        "null",
        "",
    ],
)
def test_a_form_from_another_origin_is_refused(fresh: Fresh, origin: str) -> None:
    server = fresh.serve()
    sent = origin.format(port=server.port)
    reply = server.visitor().post(PROMOTE, FORM, headers={"Origin": sent})
    assert_refused(reply, 403, "not from this dashboard")
    assert_not_promoted(fresh)


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_a_form_another_site_made_the_browser_send_is_refused(fresh: Fresh, site: str) -> None:
    server = fresh.serve()
    headers = {**same_origin(server), "Sec-Fetch-Site": site}
    reply = server.visitor().post(PROMOTE, FORM, headers=headers)
    assert_refused(reply, 403, f"Sec-Fetch-Site: {site}")
    assert_not_promoted(fresh)


def test_without_an_origin_a_referer_of_another_origin_is_refused(fresh: Fresh) -> None:
    server, alice = at_the_check_page(fresh)
    for referer in ("http://evil.example/page", f"https://127.0.0.1:{server.port}/models"):
        reply = alice.post(PROMOTE, FORM, headers={"Referer": referer})
        assert_refused(reply, 403, "not from this dashboard")
    assert_not_promoted(fresh)


def test_a_form_of_the_dashboards_own_pages_promotes(fresh: Fresh) -> None:
    server, alice = at_the_check_page(fresh)
    done = alice.post(PROMOTE, {"version": "1", "to": "staging"}, headers=same_origin(server))
    assert done.status == 303, done.text[-600:]
    assert fresh.board() == {"dev": 3, "staging": 1}
    by_name = f"http://localhost:{server.port}"
    rolled = alice.post(
        f"/models/{MODEL}/rollback",
        {"env": "dev"},
        headers={"Host": f"localhost:{server.port}", "Origin": by_name, "Referer": by_name + "/"},
    )
    assert rolled.status == 303
    assert fresh.board() == {"dev": 2, "staging": 1}
    with fresh.seeded.client() as client:
        assert [e.actor for e in client.history(MODEL, "staging")] == ["alice"]
