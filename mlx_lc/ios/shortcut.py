"""An importable Shortcut: share a conversation, run the app's compose intent, copy the result.

Writes the unsigned workflow plist (what the Shortcuts app itself exports before signing). iOS
only imports signed shortcuts, so sign it on a Mac:

    shortcuts sign --mode anyone --input "Reply in Spanish.shortcut" --output "Reply in Spanish (signed).shortcut"

The action that runs the intent is named `<bundle id>.ComposeReplyIntent` and carries an
`AppIntentDescriptor`, as Shortcuts stores App Intents actions; its parameter keys are the
intent's @Parameter property names (text, composition, maxTokens). The Mode parameter is an
App Entity whose id is the composition's name in manifest.json, and that name is what is written
here; whether Shortcuts resolves a plain id for an entity parameter on import can only be checked
on an iPhone or a Mac (if it does not, pick the mode in the imported action once).
"""

from __future__ import annotations

import plistlib
import re
import uuid
from pathlib import Path

from ..errors import MlxLcError
from ..outputs import atomic_write_bytes

INTENT = "ComposeReplyIntent"  # the Swift type in ios_shortcut/Sources/MLXLCIntents/ComposeIntent.swift
APP_NAME = "MLX LC"
OBJECT_REPLACEMENT = "\ufffc"  # where a variable sits inside a Shortcuts text field
# What the share sheet may hand over: text of any kind, and pages or files whose text Shortcuts extracts.
INPUT_CLASSES = ["WFStringContentItem", "WFRichTextContentItem", "WFSafariWebPageContentItem",
                 "WFArticleContentItem", "WFPDFContentItem", "WFGenericFileContentItem", "WFURLContentItem"]


def _uuid(seed: str) -> str:
    """Stable action UUIDs, so the same arguments always write the same file."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"mlx-lc-shortcut:{seed}")).upper()


def _shortcut_input() -> dict:
    return {"Value": {"string": OBJECT_REPLACEMENT, "attachmentsByRange": {"{0, 1}": {"Type": "ExtensionInput"}}},
            "WFSerializationType": "WFTextTokenString"}


def _output_of(action_uuid: str, name: str) -> dict:
    return {"Value": {"Type": "ActionOutput", "OutputUUID": action_uuid, "OutputName": name},
            "WFSerializationType": "WFTextTokenAttachment"}


def build_workflow(bundle_id: str, composition: str, team_id: str | None = None, max_tokens: int | None = None,
                   app_name: str = APP_NAME) -> dict:
    """The workflow dictionary: share sheet input -> ComposeReplyIntent -> Copy to Clipboard."""
    if not re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", bundle_id):
        raise MlxLcError(f"bundle id {bundle_id!r} is not reverse-DNS (e.g. com.example.mlxlc)")
    if not composition:
        raise MlxLcError("a composition name is required (see the export's manifest.json)")
    if max_tokens is not None and max_tokens < 1:
        raise MlxLcError(f"max tokens must be positive, got {max_tokens}")
    intent_uuid = _uuid(f"{bundle_id}/{composition}/intent")
    descriptor = {"AppIntentIdentifier": INTENT, "BundleIdentifier": bundle_id, "Name": app_name}
    if team_id:
        descriptor["TeamIdentifier"] = team_id
    params = {"AppIntentDescriptor": descriptor, "UUID": intent_uuid, "ShowWhenRun": False,
              "text": _shortcut_input(), "composition": composition}
    if max_tokens is not None:  # else the app uses the export's max_new_tokens
        params["maxTokens"] = max_tokens
    actions = [
        {"WFWorkflowActionIdentifier": f"{bundle_id}.{INTENT}",
         "WFWorkflowActionParameters": params},
        {"WFWorkflowActionIdentifier": "is.workflow.actions.setclipboard",
         "WFWorkflowActionParameters": {"UUID": _uuid(f"{bundle_id}/{composition}/copy"),
                                        "WFInput": _output_of(intent_uuid, f"Compose with {app_name}")}},
    ]
    return {
        "WFWorkflowActions": actions,
        "WFWorkflowClientVersion": "2605.0.5",
        "WFWorkflowMinimumClientVersion": 900,
        "WFWorkflowMinimumClientVersionString": "900",
        "WFWorkflowIcon": {"WFWorkflowIconGlyphNumber": 59511, "WFWorkflowIconStartColor": 4282601983},
        "WFWorkflowImportQuestions": [],
        # Appear in the share sheet, taking text; run by hand, use the clipboard.
        "WFWorkflowTypes": ["ActionExtension"],
        "WFWorkflowInputContentItemClasses": INPUT_CLASSES,
        "WFWorkflowHasShortcutInputVariables": True,
        "WFWorkflowNoInputBehavior": {"Name": "WFWorkflowNoInputBehaviorGetClipboard", "Parameters": {}},
        "WFWorkflowOutputContentItemClasses": [],
        "WFWorkflowHasOutputFallback": False,
        "WFQuickActionSurfaces": [],
    }


def write_shortcut(out: str | Path, bundle_id: str, composition: str, team_id: str | None = None,
                   max_tokens: int | None = None, manifest: dict | None = None) -> Path:
    """Write `out` (a .shortcut file, binary plist). With `manifest`, the composition must be in it."""
    if manifest is not None:
        names = [c["name"] for c in manifest["compositions"]]
        if composition not in names:
            raise MlxLcError(f"composition {composition!r} is not in the manifest; it has {', '.join(names)}")
    workflow = build_workflow(bundle_id, composition, team_id, max_tokens)
    out = Path(out)
    if out.suffix != ".shortcut":
        raise MlxLcError(f"{out} should end in .shortcut")
    if out.is_dir():
        raise MlxLcError(f"{out} is a folder")
    data = plistlib.dumps(workflow, fmt=plistlib.FMT_BINARY, sort_keys=True)
    atomic_write_bytes(out, data)  # never a half-written file; the umask's permissions: it is meant to be shared
    return out
