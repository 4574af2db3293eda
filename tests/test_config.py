"""Settings: environment over modelrail.toml over defaults; project discovery."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelrail.config import find_project_root, init_project, load_settings
from modelrail.errors import ConfigError


def test_project_is_found_by_walking_up(tmp_path: Path) -> None:
    init_project(tmp_path)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_project_root(deep) == tmp_path
    settings = load_settings(cwd=deep, environ={})
    assert settings.project_root == tmp_path
    assert settings.store_url == f"sqlite:///{tmp_path}/.modelrail/modelrail.db"
    assert not settings.created_project


def test_without_a_project_one_is_created_where_the_user_stands(tmp_path: Path) -> None:
    settings = load_settings(cwd=tmp_path, environ={})
    assert settings.created_project
    assert (tmp_path / ".modelrail").is_dir()
    assert (tmp_path / "modelrail.toml").is_file()


def test_environment_overrides_file_overrides_defaults(tmp_path: Path) -> None:
    init_project(tmp_path)
    (tmp_path / "modelrail.toml").write_text(
        '[store]\nurl = "sqlite:////from/file.db"\n[identity]\nuser = "alice"\n'
    )
    from_file = load_settings(cwd=tmp_path, environ={})
    assert (from_file.store_url, from_file.user) == ("sqlite:////from/file.db", "alice")
    env = {"MODELRAIL_STORE": "sqlite:////from/env.db", "MODELRAIL_USER": "bob"}
    from_env = load_settings(cwd=tmp_path, environ=env)
    assert (from_env.store_url, from_env.user) == ("sqlite:////from/env.db", "bob")


def test_unknown_key_is_reported_with_its_line(tmp_path: Path) -> None:
    init_project(tmp_path)
    (tmp_path / "modelrail.toml").write_text('[store]\n\nadress = "x"\n')
    with pytest.raises(ConfigError, match=r"modelrail.toml:3: unknown key 'adress'"):
        load_settings(cwd=tmp_path, environ={})


def test_broken_toml_is_reported_with_the_file(tmp_path: Path) -> None:
    init_project(tmp_path)
    (tmp_path / "modelrail.toml").write_text("[store\n")
    with pytest.raises(ConfigError, match=r"modelrail\.toml"):
        load_settings(cwd=tmp_path, environ={})


def test_default_config_written_by_init_is_valid(tmp_path: Path) -> None:
    init_project(tmp_path)
    assert load_settings(cwd=tmp_path, environ={}).user


def test_a_file_that_is_not_utf8_is_refused_naming_its_line(tmp_path: Path) -> None:
    init_project(tmp_path)
    (tmp_path / "modelrail.toml").write_bytes(b'[identity]\n\nuser = "j\xf6rg"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(cwd=tmp_path, environ={})
    assert caught.value.message.startswith(f"{tmp_path / 'modelrail.toml'}:3: not valid UTF-8")


def test_values_nested_thousands_deep_are_refused_not_a_crash(tmp_path: Path) -> None:
    init_project(tmp_path)
    (tmp_path / "modelrail.toml").write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_settings(cwd=tmp_path, environ={})
