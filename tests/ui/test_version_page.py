"""A version's page on the dashboard, over real HTTP: linked from the model's versions table,
it shows the version's reference profile (per column of its train and test data: kind,
count, missing rate, a summary; the distribution of its predictions), says so when there is
none, and a batch run's page shows what the run scored."""

from __future__ import annotations

import html
import re

from sklearn.linear_model import LogisticRegression

from tests.ui.conftest import FEATURES, MODEL, Fresh, Seeded, UiServer, frame


def _rows(text: str, testid: str) -> dict[str, list[str]]:
    """The cells of each row of the table ``testid``, by its column name."""
    table = text.split(f'data-testid="{testid}">', 1)[1].split("</table>", 1)[0]
    rows = {}
    for row in re.findall(r'<tr data-testid="profile-column".*?</tr>', table, re.DOTALL):
        cells = [html.unescape(c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        rows[cells[0]] = cells
    return rows


def test_a_versions_page_shows_its_reference_profile(ui: UiServer, seeded: Seeded) -> None:
    model_page = ui.get(f"/models/{MODEL}")
    assert model_page.count("version-page-link") == 3
    assert f'href="/models/{MODEL}/versions/1" data-testid="version-page-link"' in model_page.text

    page = ui.get(f"/models/{MODEL}/versions/1")
    assert page.status == 200, page.text[-600:]
    assert f"<h1>{MODEL} version 1</h1>" in page.text
    assert f'href="/runs/{seeded.runs["v1"]}"' in page.text
    with seeded.client() as client:
        reference = client.reference_profile(f"{MODEL}:1")
    assert reference is not None and reference.train is not None and reference.test is not None

    train = _rows(page.text, "profile-train")
    assert list(train) == list(FEATURES)
    column = reference.train.columns["f0"]
    assert train["f0"][1:5] == ["numeric", "120", "0.0%", column.describe()]
    assert train["f0"][4].startswith("mean ") and ", median " in train["f0"][4]
    assert list(_rows(page.text, "profile-test")) == list(FEATURES)
    assert "train 1.0" in page.text and "test 1.0" in page.text

    shares = re.findall(r'data-testid="prediction-share" data-value="([^"]+)"', page.text)
    assert reference.prediction is not None
    assert shares == list(reference.prediction.frequencies) and set(shares) <= {"0", "1"}
    assert "40 predictions" in page.text  # the 40 rows of test data


def test_a_version_without_a_profile_says_so_and_unknown_versions_are_404(fresh: Fresh) -> None:
    data = frame(30, seed=3)[list(FEATURES)]
    model = LogisticRegression().fit(data, (data["f0"] > 0).astype(int))
    with fresh.seeded.client() as client:
        client.register_model(model, MODEL, input_example=data.head())  # version 4, no run
        with client.start_run("gaps") as run:  # version 5: missing values, test data absent
            gappy = data.assign(note=["a", None, "b"] * 10, extra=[1.0, float("nan"), 2.0] * 10)
            run.log_dataset(gappy, role="train")
            run.log_model(model, name=MODEL, input_example=data.head())
    ui = fresh.serve()
    bare = ui.get(f"/models/{MODEL}/versions/4")
    assert bare.status == 200 and bare.count("no-reference-profile") == 1
    assert bare.count("profile-column") == 0

    gaps = ui.get(f"/models/{MODEL}/versions/5")
    train = _rows(gaps.text, "profile-train")
    assert train["extra"][1:5] == ["numeric", "20", "33.3%", "mean 1.5, median 1, 5-95% 1 to 2"]
    assert train["note"][1:4] == ["categorical", "20", "33.3%"]
    assert train["note"][4] == "a 50%, b 50%"
    assert gaps.count("no-profile-test") == 1  # the run logged no test data
    assert "on the train data" in gaps.text  # predictions fall back to the train data

    assert ui.get(f"/models/{MODEL}/versions/9").status == 404
    assert ui.get("/models/nobody/versions/1").status == 404


def test_a_batch_runs_page_shows_what_it_scored(ui: UiServer, seeded: Seeded) -> None:
    page = ui.get(f"/batch/{seeded.batch_ok}")
    assert page.status == 200
    assert list(_rows(page.text, "batch-input-profile")) == list(FEATURES)  # not the id column
    assert page.count("batch-predictions") == 1
    with seeded.client() as client:
        profile = client.batch_profile(seeded.batch_ok)
        assert client.batch_profile(seeded.batch_failed) is None
    assert profile is not None and profile.input is not None and profile.input.rows == 64
    shown = re.findall(r'data-testid="prediction-share" data-value="([^"]+)"', page.text)
    assert profile.prediction is not None and shown == list(profile.prediction.frequencies)
    assert ui.get(f"/batch/{seeded.batch_failed}").count("batch-input-profile") == 0
