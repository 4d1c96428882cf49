"""The sign2text command: output shapes, vocabulary options and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from sign2text_core.cli import main
from tests.media import make_clip


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<gloss>/<clip>`` videos: one of a gloss the model knows, one it does not."""
    folder = tmp_path_factory.mktemp("glosses")
    (folder / "water").mkdir()
    (folder / "walk").mkdir()
    make_clip(folder / "water" / "pattern.mp4", seconds=0.3)
    make_clip(folder / "walk" / "pattern.mp4", seconds=0.3, size=(240, 320))
    (folder / "walk" / "notes.txt").write_text("not a clip")
    return folder


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 0.4-second 320x240 test pattern: 12 frames, quick to classify."""
    return make_clip(tmp_path_factory.mktemp("short") / "short.mp4", seconds=0.4)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_classify_json_prints_one_object_per_clip(
    short_clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        ["classify", str(short_clip), str(short_clip), "--json", "--top", "3"], capsys
    )

    documents = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert len(documents) == 2
    for document in documents:
        assert document["file"] == str(short_clip)
        assert isinstance(document["label"], str) and 0 <= document["score"] <= 1
        assert [set(entry) for entry in document["top_k"]] == [{"label", "score"}] * 3
        assert document["top_k"][0]["label"] == document["label"]
        assert document["vocabulary"]["restricted"] is False


def test_classify_prints_a_readable_answer(
    short_clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["classify", str(short_clip)], capsys)

    assert code == 0
    assert out.startswith(f"{short_clip}: ")
    assert "frames" in out and "ms" in out


def test_missing_clip_exits_non_zero_with_its_code_and_no_traceback(
    short_clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "absent.mp4"

    code, out, err = run(["classify", str(short_clip), str(missing), "--json"], capsys)

    assert code == 1
    documents = [json.loads(line) for line in out.splitlines()]
    assert "label" in documents[0]
    assert documents[1]["error"]["code"] == "not_found"
    assert "error not_found" in err and str(missing) in err
    assert "Traceback" not in err


def test_file_that_is_not_a_video_exits_with_not_a_video(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"\x00\x01 not a video " * 200)

    code, _, err = run(["classify", str(fake)], capsys)

    assert code == 1
    assert "error not_a_video" in err


def test_unknown_label_exits_with_usage_code(
    short_clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        ["classify", str(short_clip), "--labels", "water,teapot"], capsys
    )

    assert code == 2
    assert out == ""
    assert "error unknown_label" in err and "teapot" in err


@pytest.mark.parametrize("labels", ["", " , ,"])
def test_empty_label_list_exits_with_invalid_parameter(
    short_clip: Path, labels: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["classify", str(short_clip), "--labels", labels], capsys)

    assert code == 2
    assert "error invalid_parameter" in err


def test_labels_restrict_and_duplicates_count_once(
    short_clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels_file = tmp_path / "lesson.txt"
    labels_file.write_text("water\nhello, water\n\nYes\n")

    code, out, _ = run(
        ["classify", str(short_clip), "--json", "--labels-file", str(labels_file)],
        capsys,
    )

    document = json.loads(out)
    assert code == 0
    assert document["vocabulary"] == {
        "restricted": True,
        "size": 3,
        "labels": ["water", "hello", "yes"],
    }
    assert {entry["label"] for entry in document["top_k"]} == {"water", "hello", "yes"}
    assert sum(entry["score"] for entry in document["top_k"]) == pytest.approx(
        1.0, abs=1e-5
    )


def test_single_label_answers_that_label(
    short_clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        ["classify", str(short_clip), "--json", "--labels", "thankyou"], capsys
    )

    document = json.loads(out)
    assert code == 0
    assert document["label"] == "thankyou" and document["score"] == pytest.approx(1.0)


def test_environment_default_vocabulary_applies_without_labels(
    short_clip: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIGN2TEXT_LABELS", "hello,yes")

    code, out, _ = run(["classify", str(short_clip), "--json"], capsys)

    assert code == 0
    assert json.loads(out)["vocabulary"]["labels"] == ["hello", "yes"]


def test_overlay_writes_a_contact_sheet_png(
    short_clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sheet = tmp_path / "sheet.png"

    code, _, _ = run(["classify", str(short_clip), "--overlay", str(sheet)], capsys)

    image = cv2.imread(str(sheet))
    assert code == 0
    assert image is not None
    assert image.shape[1] == 4 * 320
    assert image.shape[0] == 36 + 3 * 240


def test_evaluate_reports_accuracy_counts_and_progress(
    clip_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path = tmp_path / "report.json"

    code, out, err = run(
        ["evaluate", str(clip_folder), "--json", str(report_path)], capsys
    )

    report = json.loads(report_path.read_text())
    assert code == 0
    assert report["clips"] == 2
    assert report["known"] == 1
    assert report["unknown_glosses"] == 1
    assert 0.0 <= report["top1"] <= report["top5"] <= 1.0
    assert report["vocabulary"] is None
    assert {row["file"] for row in report["results"]} == {
        "water/pattern.mp4",
        "walk/pattern.mp4",
    }
    assert "top-1" in out and "water/pattern.mp4" in out
    assert "progress 2/2" in err


def test_evaluate_with_labels_from_dir_uses_the_known_glosses(
    clip_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path = tmp_path / "report.json"

    code, _, _ = run(
        ["evaluate", str(clip_folder), "--labels-from-dir", "--json", str(report_path)],
        capsys,
    )

    report = json.loads(report_path.read_text())
    assert code == 0
    assert report["vocabulary"] == ["water"]
    assert report["known"] == 1
    assert report["top1"] == 1.0


def test_evaluate_saved_landmarks_give_the_same_answers_when_read_back(
    clip_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved, first, second = tmp_path / "npz", tmp_path / "a.json", tmp_path / "b.json"
    folder = str(clip_folder)

    run(
        ["evaluate", folder, "--save-landmarks", str(saved), "--json", str(first)],
        capsys,
    )
    run(
        ["evaluate", folder, "--landmarks-from", str(saved), "--json", str(second)],
        capsys,
    )

    assert sorted(path.name for path in saved.rglob("*.npz")) == ["pattern.npz"] * 2
    answers = [
        [(row["file"], row["top_k"]) for row in json.loads(path.read_text())["results"]]
        for path in (first, second)
    ]
    assert answers[0] == answers[1]


def test_evaluate_of_a_folder_without_clips_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["evaluate", str(tmp_path)], capsys)

    assert code == 2
    assert "error invalid_parameter" in err


@pytest.mark.shared
def test_evaluate_on_reference_landmarks_reaches_the_reference_accuracy(
    shared_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full, restricted = tmp_path / "full.json", tmp_path / "restricted.json"
    clips, reference = str(shared_dir / "clips"), str(shared_dir / "reference")

    run(["evaluate", clips, "--landmarks-from", reference, "--json", str(full)], capsys)
    run(
        [
            "evaluate",
            clips,
            "--landmarks-from",
            reference,
            "--labels-from-dir",
            "--json",
            str(restricted),
        ],
        capsys,
    )

    full_report = json.loads(full.read_text())
    restricted_report = json.loads(restricted.read_text())
    assert (full_report["known"], full_report["unknown_glosses"]) == (51, 17)
    assert (full_report["top1_count"], full_report["top5_count"]) == (11, 23)
    assert len(restricted_report["vocabulary"]) == 11
    assert restricted_report["top1"] >= 0.5


def test_landmarks_command_saves_the_clips_landmarks(
    short_clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pattern.npz"

    code, _, _ = run(["landmarks", str(short_clip), "--out", str(out)], capsys)

    with np.load(out) as archive:
        landmarks, frame_index, fps = (
            archive["landmarks"],
            archive["frame_index"],
            archive["fps"],
        )
    assert code == 0
    assert landmarks.shape == (12, 543, 3) and landmarks.dtype == np.float32
    assert frame_index.tolist() == list(range(12))
    assert float(fps) == pytest.approx(30.0)


def test_invoke_with_an_unreadable_event_file_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        ["invoke", str(tmp_path / "absent.json"), "--root", str(tmp_path)], capsys
    )

    assert code != 0
    assert "Traceback" not in err


def test_watch_once_classifies_a_dropped_clip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    make_clip(inbox / "dropped.mp4", seconds=0.3)

    code, _, _ = run(["watch", str(inbox), "--once"], capsys)

    results = list(inbox.rglob("*.json"))
    assert code == 0
    assert len(results) == 1
    result = results[0].read_text()
    assert json.loads(result)["source"]["key"] == "dropped.mp4"
    assert '"top_k"' in result


def test_python_dash_m_runs_the_command_in_a_fresh_process(tmp_path: Path) -> None:
    missing = tmp_path / "absent.mp4"

    finished = subprocess.run(
        [sys.executable, "-m", "sign2text_core", "classify", str(missing)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert finished.returncode == 1
    assert "error not_found" in finished.stderr
    assert "Traceback" not in finished.stderr


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "sign2text"
    if not script.exists():
        pytest.skip("the package is not installed in this environment")

    finished = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=60
    )

    assert finished.returncode == 0
    assert "classify" in finished.stdout and "evaluate" in finished.stdout
