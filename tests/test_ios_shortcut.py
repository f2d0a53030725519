"""The Shortcut file and the Swift intent that the iOS app and Shortcuts agree on."""

from __future__ import annotations

import plistlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlx_lc import manifest as manifest_mod
from mlx_lc.errors import MlxLcError
from mlx_lc.ios.golden import DEFAULT_OUT as GOLDEN
from mlx_lc.ios.shortcut import INTENT, build_workflow, write_shortcut

ROOT = Path(__file__).resolve().parents[1]
INTENT_SWIFT = ROOT / "ios_shortcut/Sources/MLXLCIntents/ComposeIntent.swift"
MANIFEST = manifest_mod.read(GOLDEN / "manifest.json")


def test_shortcut_is_a_plist_with_share_input_intent_and_copy(tmp_path):
    out = write_shortcut(tmp_path / "Reply in French.shortcut", "com.example.mlxlc", "reply_fr", team_id="ABCDE12345",
                         max_tokens=100, manifest=MANIFEST)
    raw = out.read_bytes()
    assert raw.startswith(b"bplist00")
    wf = plistlib.loads(raw)
    assert wf["WFWorkflowTypes"] == ["ActionExtension"]  # offered in the share sheet
    assert "WFStringContentItem" in wf["WFWorkflowInputContentItemClasses"]
    intent, copy = wf["WFWorkflowActions"]
    assert intent["WFWorkflowActionIdentifier"] == f"com.example.mlxlc.{INTENT}"
    p = intent["WFWorkflowActionParameters"]
    assert p["AppIntentDescriptor"] == {"AppIntentIdentifier": INTENT, "BundleIdentifier": "com.example.mlxlc",
                                        "Name": "MLX LC", "TeamIdentifier": "ABCDE12345"}
    assert p["composition"] == "reply_fr" and p["maxTokens"] == 100
    text = p["text"]["Value"]
    assert text["string"] == "\ufffc" and text["attachmentsByRange"]["{0, 1}"]["Type"] == "ExtensionInput"
    assert copy["WFWorkflowActionIdentifier"] == "is.workflow.actions.setclipboard"
    source = copy["WFWorkflowActionParameters"]["WFInput"]["Value"]
    assert source["Type"] == "ActionOutput" and source["OutputUUID"] == p["UUID"]
    # Same arguments, same bytes (stable UUIDs); no stray temporary files.
    again = write_shortcut(tmp_path / "again.shortcut", "com.example.mlxlc", "reply_fr", "ABCDE12345", 100, MANIFEST)
    assert again.read_bytes() == raw
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Reply in French.shortcut", "again.shortcut"]


def test_shortcut_names_match_the_swift_intent():
    """The plist addresses the intent by type and parameter names; they must exist in Swift."""
    swift = INTENT_SWIFT.read_text()
    assert re.search(rf"struct {INTENT}: AppIntent", swift)
    params = set(build_workflow("com.example.mlxlc", "sum_es", max_tokens=64)["WFWorkflowActions"][0]["WFWorkflowActionParameters"])
    assert "maxTokens" not in build_workflow("com.example.mlxlc", "sum_es")["WFWorkflowActions"][0]["WFWorkflowActionParameters"]
    for name in params - {"AppIntentDescriptor", "UUID", "ShowWhenRun"}:
        assert re.search(rf"@Parameter\([^)]*\)\s*public var {name}:", swift), name


@pytest.mark.parametrize("kwargs, message", [
    ({"bundle_id": "not a bundle", "composition": "sum_es"}, "reverse-DNS"),
    ({"bundle_id": "com.example.mlxlc", "composition": "nope", "manifest": MANIFEST}, "not in the manifest"),
    ({"bundle_id": "com.example.mlxlc", "composition": "sum_es", "max_tokens": 0}, "positive"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, kwargs, message):
    with pytest.raises(MlxLcError, match=message):
        write_shortcut(tmp_path / "x.shortcut", **kwargs)
    assert not list(tmp_path.iterdir())


def test_script_writes_the_file_and_fails_cleanly(tmp_path):
    script = ROOT / "scripts/make_shortcut.py"
    ok = subprocess.run([sys.executable, str(script), "--bundle-id", "com.example.mlxlc", "--composition", "sum_de",
                         "--manifest", str(GOLDEN / "manifest.json")], cwd=tmp_path, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "Summary in German.shortcut").is_file()
    bad = subprocess.run([sys.executable, str(script), "--bundle-id", "com.example.mlxlc", "--composition", "zz",
                          "--manifest", str(GOLDEN / "manifest.json")], cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_modes_are_read_from_the_installed_manifest_not_compiled_in():
    """The Mode parameter is an entity listed from manifest.json at run time: a new export needs no
    rebuild, and no generated enum of compositions is left in the sources."""
    swift = INTENT_SWIFT.read_text()
    assert re.search(r"@Parameter\([^)]*\)\s*public var composition: CompositionEntity", swift)
    entity = (INTENT_SWIFT.parent / "CompositionEntity.swift").read_text()
    assert re.search(r"struct CompositionEntity: AppEntity", entity)
    assert "CompositionCatalog.installed(in: ModelHost.searchDirectories)" in entity
    sources = ROOT / "ios_shortcut/Sources"
    assert not [p for p in sources.rglob("*.swift") if re.search(r"enum \w+:[^{]*\bAppEnum\b", p.read_text())]
    assert not (ROOT / "scripts/ios_compositions.py").exists()
