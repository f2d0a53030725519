"""On-device export. graph.py describes the network independently of any runtime; coreml.py
writes it as a Core ML package; interpret.py and verify.py check the saved package on Linux;
package.py ties it together with the tokenizer files and manifest.json.

coremltools is optional (pip install "mlx-lc[coreml]") and imported only when exporting.
"""

from .compositions import CompositionSpec
from .package import ExportConfig, export

__all__ = ["CompositionSpec", "ExportConfig", "export"]
