"""Write the App Intents enum of an export's compositions into the iOS app's sources.

    python scripts/ios_compositions.py EXPORT/manifest.json [--out ios_shortcut/Sources/MLXLCIntents/CompositionChoice.swift]
"""

import click

from mlx_lc.errors import MlxLcError
from mlx_lc.ios.codegen import DEFAULT_OUT, write_app_enum


@click.command()
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), default=str(DEFAULT_OUT), show_default=True,
              help="Swift file to write.")
def main(manifest: str, out: str) -> None:
    """Generate CompositionChoice.swift (the Mode picker in Shortcuts) from MANIFEST."""
    try:
        path = write_app_enum(manifest, out)
    except MlxLcError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"wrote {path}")


if __name__ == "__main__":
    main()
