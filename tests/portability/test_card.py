"""Model cards from the records (``Client.model_card`` and ``card_markdown``), on SQLite and
PostgreSQL: models of different families, a version without a run, one never promoted, one
promoted with an approval and rolled back, the owner's sections edited and kept, escaping,
and bad references."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from sqlalchemy import text

from modelrail.client import Client
from modelrail.config import load_settings
from modelrail.errors import (
    InvalidInputError,
    InvalidReferenceError,
    ModelNotFoundError,
    ModelVersionNotFoundError,
)
from modelrail.portability.card_markdown import card_markdown
from modelrail.ui.pages_card import card_to_html

MODEL = "churn"


def customers(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Strings with gaps and numbers with gaps, as real tables have."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(np.array(["basic", "plus", "pro", None], dtype=object), size=rows)
    tenure = rng.uniform(0, 60, size=rows)
    tenure[rng.random(rows) < 0.15] = np.nan
    frame = pd.DataFrame({"plan": plan, "tenure": tenure})
    labels = ((np.nan_to_num(tenure) < 20) | (plan == "basic")).astype(int)
    return frame, labels


def pipeline() -> Pipeline:
    categories = Pipeline(
        [
            ("fill", SimpleImputer(strategy="constant", fill_value="none")),
            ("encode", OneHotEncoder(handle_unknown="ignore")),
        ]
    )
    prepare = ColumnTransformer(
        [("plan", categories, ["plan"]), ("tenure", SimpleImputer(), ["tenure"])]
    )
    return Pipeline([("prepare", prepare), ("model", LogisticRegression())])


def train(client: Client, seed: int = 0) -> int:
    X, y = customers(200, seed)
    test_X, test_y = customers(50, seed + 100)
    with client.start_run("churn-models", architecture="onehot-logistic") as run:
        run.log_params({"C": 1.0, "features": ["plan", "tenure"]})
        run.log_dataset(X, role="train", name="customers")
        run.log_dataset(test_X, role="test", name="customers")
        model = pipeline().fit(X, y)
        run.log_metrics(
            {"train_accuracy": 0.9, "test_accuracy": float(model.score(test_X, test_y))}
        )
        version = run.log_model(model, MODEL, input_example=X[:5], description="Who may leave")
    return version.version


@pytest.fixture
def people(store_url: str, tmp_path: Path) -> Iterator[dict[str, Client]]:
    """alice and bob, each with a client of their own on one store."""
    settings = load_settings(cwd=tmp_path, environ={}, create=False)
    clients = {
        name: Client(store_url=store_url, settings=settings, user=name) for name in ("alice", "bob")
    }
    try:
        yield clients
    finally:
        for made in clients.values():
            made.close()


def test_card_of_a_pipeline_with_string_categories_and_missing_values(
    people: dict[str, Client],
) -> None:
    alice = people["alice"]
    assert train(alice) == 1
    card = alice.model_card(f"{MODEL}:1")
    data = card.to_json()
    assert (data["estimator"], data["library"]) == ("sklearn.pipeline.Pipeline", "scikit-learn")
    assert data["architecture"] == "onehot-logistic" and data["registered_by"] == "alice"
    inputs = {
        c["name"]: (c["dtype"], c.get("nullable", False)) for c in data["signature"]["inputs"]
    }
    assert inputs == {"plan": ("string", True), "tenure": ("float64", True)}
    roles = [(d["role"], d["dataset"], d["label"], d["rows"]) for d in data["data"]]
    assert roles == [("train", "customers", "1.0", 200), ("test", "customers", "1.0", 50)]
    assert data["data"][0]["columns"] == [["plan", "string"], ["tenure", "float64"]]
    assert data["params"] == {"C": 1.0, "features": ["plan", "tenure"]}
    assert set(data["test_metrics"]) == {"test_accuracy"}
    assert data["metrics"] == {"train_accuracy": 0.9}
    assert data["test_data"] == "customers 1.0"
    assert data["packages"]["python"] and data["packages"]["scikit-learn"]
    assert set(data["code"]) >= {"commit", "branch", "dirty"} and data["environment_packages"] > 10
    assert data["environments"]["now"] == ["dev"]
    assert data["predictor"]["one_row"]["form"]

    markdown = card_markdown(card)
    assert markdown.startswith(f"# Model card: {MODEL} version 1\n")
    assert "| plan | string | allowed |" in markdown
    assert "| train | customers | `1.0` | 200 |" in markdown
    assert "On the test data (customers 1.0):" in markdown
    assert "| test\\_accuracy |" in markdown
    for heading in ("Signature", "Data", "Parameters", "Metrics", "Promotions and gates"):
        assert f"\n## {heading}\n" in markdown
    for heading in ("Environments", "Predictor", "Packages", "Code", "Intended use"):
        assert f"\n## {heading}\n" in markdown
    assert "Not written yet" in markdown  # the suggested sections, until written


def test_card_of_lightgbm_and_statsmodels_models(people: dict[str, Client]) -> None:
    lightgbm = pytest.importorskip("lightgbm")
    sm = pytest.importorskip("statsmodels.api")
    alice = people["alice"]
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"a": rng.normal(size=120), "b": rng.normal(size=120)})
    X.loc[::7, "b"] = np.nan
    y = (X["a"] > 0).astype(int)
    booster = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, y)
    with alice.start_run("trees") as run:
        run.log_dataset(X, role="train", name="points")
        run.log_model(booster, "trees", input_example=X[:3])
    card = alice.model_card("trees:1").to_json()
    assert card["flavor"] == "lightgbm" and card["estimator"].endswith("LGBMClassifier")
    assert "lightgbm" in card["packages"]
    assert {c["name"]: c.get("nullable") for c in card["signature"]["inputs"]}["b"] is True

    exog = sm.add_constant(pd.DataFrame({"x": rng.normal(size=60)}))
    ols = sm.OLS(exog["x"] * 2 + rng.normal(size=60), exog).fit()
    version = alice.register_model(ols, "linear", input_example=exog[:3])
    card = alice.model_card(f"linear:{version.version}")
    assert card.run is None and card.version.flavor == "statsmodels"
    markdown = card_markdown(card)
    assert "No run is recorded for this version, so no data versions are known." in markdown
    assert "| Run | none: registered without a run |" in markdown
    assert "No run is recorded for this version, so its code is not known." in markdown
    assert "| statsmodels |" in markdown


def test_never_promoted_version_and_one_promoted_with_approval_and_rolled_back(
    people: dict[str, Client],
) -> None:
    alice, bob = people["alice"], people["bob"]
    train(alice, 0)
    alice.promote(f"{MODEL}:1", "staging", reason="first")
    request = alice.promote(f"{MODEL}:1", "prod", reason="ship it").request
    assert request is not None
    bob.approve(request.id, reason="looked at it")
    train(alice, 1)
    alice.promote(f"{MODEL}:2", "staging", reason="second")
    bob.rollback(MODEL, "staging", reason="drill")
    train(alice, 2)  # version 3: entered dev, never promoted

    first = alice.model_card(f"{MODEL}:1")
    actions = [(d.environment, d.action, d.actor) for d in first.decisions]
    assert actions == [
        ("dev", "auto", "alice"),
        ("staging", "promote", "alice"),
        ("prod", "request", "alice"),
        ("prod", "approve", "bob"),
        ("dev", "auto", "alice"),  # version 2 took its place in dev
        ("staging", "promote", "alice"),  # and in staging
        ("staging", "rollback", "bob"),  # until the rollback brought it back
    ]
    assert first.held_now == ("staging", "prod")
    tenures = [(t.environment, t.until is None) for t in first.tenures]
    assert tenures == [("dev", False), ("staging", False), ("prod", True), ("staging", True)]
    markdown = card_markdown(first)
    assert "| prod | approved (request 1) | bob |" in markdown
    assert "| prod | requested approval (request 1) | alice |" in markdown
    assert "| staging | rolled back from 2 to it | bob |" in markdown
    assert "| staging | replaced by version 2 | alice |" in markdown
    assert re.search(r"Gates when approved \(request 1\) in prod:\n\n- passed ", markdown)
    assert "Held now by: staging, prod." in markdown

    second = card_markdown(alice.model_card(f"{MODEL}@dev"))
    assert second.startswith(f"# Model card: {MODEL} version 3")
    assert "| promoted |" not in second and "Held now by: dev." in second
    third = alice.model_card(f"{MODEL}:2")
    assert third.held_now == () and [t.until is not None for t in third.tenures] == [True, True]
    assert "| staging | replaced by version 1 | bob |" in card_markdown(third)


def test_sections_edited_twice_show_the_latest_and_keep_the_history(
    people: dict[str, Client],
) -> None:
    alice, bob = people["alice"], people["bob"]
    train(alice, 0)
    train(alice, 1)
    alice.edit_card_section(MODEL, "Intended use", "Rank customers for calls.")
    bob.edit_card_section(MODEL, "intended   USE", "Rank customers for the *monthly* calls.")
    alice.edit_card_section(f"{MODEL}:2", "Limitations", "Trained on 2023 only.")
    alice.edit_card_section(MODEL, "Limitations", "Not for new markets.")
    alice.edit_card_section(MODEL, "Data retention", "Scores kept 30 days.")

    (use, limits, retention) = alice.card_sections(MODEL, 2)
    assert (use.title, use.text, use.author) == (
        "intended USE",
        "Rank customers for the *monthly* calls.",
        "bob",
    )
    assert (limits.text, limits.version) == ("Trained on 2023 only.", 2)  # the version's own
    assert retention.title == "Data retention"
    assert [s.text for s in alice.card_sections(MODEL, 1)][1] == "Not for new markets."

    markdown = card_markdown(alice.model_card(f"{MODEL}:2"))
    assert "## intended USE\n\nRank customers for the *monthly* calls.\n" in markdown
    assert "Rank customers for calls." not in markdown
    assert "*Written by bob on " in markdown and "for every version.*" in markdown
    assert "for version 2 only.*" in markdown
    assert "## Ethical considerations" in markdown and "## Intended use" not in markdown

    # emptying the version's own section lets the model's show again; nothing is lost
    alice.edit_card_section(f"{MODEL}:2", "Limitations", "")
    assert [s.text for s in alice.card_sections(MODEL, 2)][1] == "Not for new markets."
    alice.edit_card_section(MODEL, "Data retention", "\n")
    assert [s.title for s in alice.card_sections(MODEL, 2)] == ["intended USE", "Limitations"]
    history = alice.card_section_history(MODEL, "INTENDED USE")
    assert [(e.author, e.text) for e in history] == [
        ("alice", "Rank customers for calls."),
        ("bob", "Rank customers for the *monthly* calls."),
    ]
    assert len(alice.card_section_history(MODEL)) == 7


def test_stored_sections_cannot_be_changed_or_deleted(people: dict[str, Client]) -> None:
    alice = people["alice"]
    train(alice)
    alice.edit_card_section(MODEL, "Intended use", "x")
    engine = alice.db.engine
    for statement in (
        "UPDATE model_card_sections SET text = 'y'",
        "DELETE FROM model_card_sections",
    ):
        with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    assert [s.text for s in alice.card_sections(MODEL)] == ["x"]


def test_names_and_texts_cannot_put_html_in_the_rendered_card(people: dict[str, Client]) -> None:
    alice = people["alice"]
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"<script>alert(1)</script>": rng.normal(size=40), "a|b": rng.normal(size=40)})
    y = (X.iloc[:, 0] > 0).astype(int)
    with alice.start_run("odd") as run:
        run.log_params({"<b>bold</b>": "<i>x</i>"})
        run.log_dataset(X, role="train", name="odd")
        run.log_model(
            LogisticRegression().fit(X, y),
            MODEL,
            input_example=X[:2],
            description="# not a heading\n<img src=x onerror=alert(2)>",
        )
    alice.edit_card_section(
        MODEL,
        "<img src=x onerror=alert(3)>",
        "<script>alert(4)</script>\n\n[click](javascript:alert(5)) <a href='x'>y</a>",
    )
    markdown = card_markdown(alice.model_card(f"{MODEL}:1"))
    assert "| \\<script\\>alert(1)\\</script\\> | float64 | refused |" in markdown
    assert "| a\\|b | float64 | refused |" in markdown
    assert "\n\\# not a heading\n\\<img src=x onerror=alert(2)\\>\n" in markdown
    assert "## \\<img src=x onerror=alert(3)\\>" in markdown

    html = card_to_html(markdown)
    assert not re.search(r"<(script|img|a href='x'|i>)", html), html
    assert "javascript:" not in html.replace("[click](javascript:alert(5))", "")
    assert 'href="javascript' not in html
    assert "&lt;script&gt;alert(4)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(3)&gt;" in html
    assert "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>" in html


def test_bad_references_and_bad_sections_are_clear_errors(people: dict[str, Client]) -> None:
    alice = people["alice"]
    train(alice)
    with pytest.raises(ModelNotFoundError, match="'nobody'"):
        alice.model_card("nobody:1")
    with pytest.raises(ModelVersionNotFoundError, match="no version 9"):
        alice.model_card(f"{MODEL}:9")
    with pytest.raises(InvalidReferenceError, match="not a ref"):
        alice.model_card("not a ref!")
    with pytest.raises(InvalidReferenceError, match="not for what prod holds"):
        alice.edit_card_section(f"{MODEL}@prod", "Intended use", "x")
    with pytest.raises(ModelVersionNotFoundError):
        alice.edit_card_section(f"{MODEL}:4", "Intended use", "x")
    with pytest.raises(ModelNotFoundError):
        alice.edit_card_section("nobody", "Intended use", "x")
    with pytest.raises(ModelNotFoundError):
        alice.card_section_history("nobody")
    for title, words in (
        ("  ", "needs a title"),
        ("x" * 129, "at most 128"),
        ("a\x07b", "control"),
    ):
        with pytest.raises(InvalidInputError, match=words) as caught:
            alice.edit_card_section(MODEL, title, "x")
        assert caught.value.param == "section"
    with pytest.raises(InvalidInputError, match="at most 100,000") as caught:
        alice.edit_card_section(MODEL, "Intended use", "x" * 100_001)
    assert caught.value.param == "text"
    assert alice.card_section_history(MODEL) == []
