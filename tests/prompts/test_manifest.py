"""manifest.json: read, written stably and atomically, and where the built files are."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ivrkit.prompts.manifest import Manifest, ManifestEntry, ManifestError

ENTRY = ManifestEntry(source="en/welcome.mp3", key="abc", duration=1.734, loudness=-20.0, peak=-3.1,
                      source_loudness=-26.4, formats=["wav", "sln16"], warnings=["clipping: 12 samples"])


def test_a_missing_manifest_is_empty(tmp_path: Path) -> None:
    manifest = Manifest.load(tmp_path)
    assert manifest.prompts == {} and manifest.out == "../build/prompts"
    assert manifest.entry("en", "welcome") is None


def test_round_trip_and_stable_text(tmp_path: Path) -> None:
    manifest = Manifest(out="../build/prompts")
    manifest.set("en", "welcome", ENTRY)
    manifest.set("de", "welcome", ManifestEntry(source=None, key="k", duration=0.7, placeholder=True))
    manifest.save(tmp_path)
    text = (tmp_path / "manifest.json").read_text()
    assert text.endswith("}\n")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    assert json.loads(text)["prompts"]["en"]["welcome"] == {
        "source": "en/welcome.mp3", "placeholder": False, "key": "abc", "duration": 1.734, "loudness": -20.0,
        "peak": -3.1, "source_loudness": -26.4, "formats": ["wav", "sln16"], "warnings": ["clipping: 12 samples"],
    }
    again = Manifest.load(tmp_path)
    assert again == manifest
    assert [(language, prompt) for language, prompt, _ in again.items()] == [("de", "welcome"), ("en", "welcome")]
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]  # no temporary file left behind


def test_remove_drops_an_emptied_language() -> None:
    manifest = Manifest()
    manifest.set("en", "welcome", ENTRY)
    assert manifest.remove("en", "welcome") == ENTRY
    assert manifest.prompts == {}
    assert manifest.remove("en", "welcome") is None


def test_built_files_are_below_the_out_folder(tmp_path: Path) -> None:
    manifest = Manifest(out="../build/prompts")
    assert manifest.out_dir(tmp_path / "prompts") == tmp_path / "prompts" / "../build/prompts"
    assert manifest.built_file(tmp_path, "en", "welcome", "sln16") == tmp_path / "../build/prompts/en/welcome.sln16"


@pytest.mark.parametrize(("text", "message"), [
    ('{"prompts": {', r"manifest.json:1:14: not valid JSON \(Expecting property name enclosed in double quotes\); "
     r"it is written by `ivrkit prompts build`: restore it from version control, or delete it and build again"),
    ("[]", r"manifest.json: not a prompt manifest \(no 'prompts' mapping\)"),
    ('{"version": 7, "prompts": {}}', r"manifest.json: manifest version 7 is not 1; update ivrkit"),
])
def test_a_broken_manifest_says_what_to_do(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(ManifestError, match=message):
        Manifest.load(tmp_path)
