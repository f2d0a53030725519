"""Download the source data sets' real files through huggingface_hub.

Files come from the hub cache (`HF_HOME`, or `cache_dir`): downloads resume, repeated builds reuse
them, and `HF_HUB_OFFLINE=1` (or `offline=True`) works once they are cached. We fetch the repos'
own files (CSV, TSV, parquet) with `hf_hub_download` rather than the `datasets` library: it is a
much smaller dependency and two of the four sources only ship a loading script there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import MlxLcError


@dataclass(frozen=True)
class HubFile:
    repo_id: str
    filename: str
    revision: str = "main"

    def __str__(self) -> str:
        return f"{self.repo_id}/{self.filename}@{self.revision}"


def fetch(f: HubFile, cache_dir: str | Path | None = None, offline: bool = False) -> Path:
    """Path of `f` in the local hub cache, downloading it first unless `offline`."""
    from huggingface_hub import errors as hub_errors
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(f.repo_id, f.filename, repo_type="dataset", revision=f.revision,
                                    cache_dir=str(cache_dir) if cache_dir else None,
                                    local_files_only=offline))
    except getattr(hub_errors, "LocalEntryNotFoundError", FileNotFoundError):
        raise MlxLcError(f"{f} is not in the hub cache{f' {cache_dir}' if cache_dir else ''} and cannot be "
                         "downloaded (offline, or no network): run once with network access") from None
    except getattr(hub_errors, "GatedRepoError", ()):
        raise MlxLcError(f"{f.repo_id} is gated: accept its terms on the hub and log in (hf auth login)") from None
    except getattr(hub_errors, "RepositoryNotFoundError", ()):
        raise MlxLcError(f"dataset repo {f.repo_id} not found on the hub") from None
    except getattr(hub_errors, "RevisionNotFoundError", ()):
        raise MlxLcError(f"revision {f.revision!r} not found in {f.repo_id}") from None
    except getattr(hub_errors, "EntryNotFoundError", ()):
        raise MlxLcError(f"{f.filename} not found in {f.repo_id}@{f.revision}") from None
    except getattr(hub_errors, "RemoteEntryNotFoundError", ()):
        raise MlxLcError(f"{f.filename} not found in {f.repo_id}@{f.revision}") from None
    except OSError as e:  # network errors, disk full, permissions
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MlxLcError(f"cannot download {f}: {first}") from None


def commit_of(path: Path) -> str | None:
    """The commit hash a cached file belongs to (…/snapshots/<commit>/<filename>), for the manifest."""
    parts = Path(path).parts
    if "snapshots" in parts:
        i = parts.index("snapshots")
        if i + 1 < len(parts):
            return parts[i + 1]
    return None
