"""Write an importable Shortcut that runs the iOS app's compose intent on shared text.

    python scripts/make_shortcut.py --bundle-id com.example.mlxlc --composition sum_es \\
        [--manifest EXPORT/manifest.json] [--team-id ABCDE12345] [--out "Summary in Spanish.shortcut"]

Then, on a Mac: shortcuts sign --mode anyone --input IN.shortcut --output OUT.shortcut
and AirDrop OUT.shortcut to the iPhone (iOS imports signed shortcuts only).
"""

from pathlib import Path

import click

from mlx_lc import manifest as manifest_mod
from mlx_lc.errors import MlxLcError
from mlx_lc.ios.shortcut import write_shortcut


@click.command()
@click.option("--bundle-id", required=True, help="The app's bundle identifier (PRODUCT_BUNDLE_IDENTIFIER).")
@click.option("--composition", required=True, help="Composition name from manifest.json, e.g. sum_es.")
@click.option("--manifest", "manifest_path", type=click.Path(dir_okay=False),
              help="The export's manifest.json, to check the composition and name the file by its title.")
@click.option("--team-id", help="Your Apple developer team id (optional; Shortcuts matches the app by bundle id).")
@click.option("--max-tokens", type=int, help="Longest reply, in tokens (default: the export's max_new_tokens).")
@click.option("--out", type=click.Path(dir_okay=False), help="Output .shortcut file (default: <title>.shortcut).")
def main(bundle_id, composition, manifest_path, team_id, max_tokens, out):
    """Write an unsigned .shortcut: share sheet input -> the app's intent -> Copy to Clipboard."""
    try:
        manifest = manifest_mod.read(manifest_path) if manifest_path else None
        title = next((c["title"] for c in manifest["compositions"] if c["name"] == composition),
                     composition) if manifest else composition
        path = write_shortcut(out or Path(f"{title}.shortcut"), bundle_id, composition, team_id, max_tokens, manifest)
    except MlxLcError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"wrote {path}; sign it on a Mac: shortcuts sign --mode anyone --input '{path}' --output '{path.stem} (signed).shortcut'")


if __name__ == "__main__":
    main()
