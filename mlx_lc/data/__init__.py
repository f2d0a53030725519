"""The paper's benchmark data: source readers, compositional targets, and the build command.

See README.md in this folder for the sources, their quirks, split sizes and the cost of a build.
"""

from .build import ALL_SOURCES, DEFAULT_REWRITER, DEFAULT_TRANSLATOR, BuildConfig, build

__all__ = ["build", "BuildConfig", "ALL_SOURCES", "DEFAULT_TRANSLATOR", "DEFAULT_REWRITER"]
