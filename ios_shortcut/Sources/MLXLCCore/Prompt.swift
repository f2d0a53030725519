import Foundation

/// Python's `str.isspace()` set. The prompt contract is `prefix + text.strip() + suffix`, and
/// Python strips these scalars (including the \x1c-\x1f separators that Foundation's
/// whitespace sets leave alone), so the app strips exactly these too.
public enum PythonWhitespace {
    public static func contains(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// `text.strip()`, scalar by scalar (a Character can hold a space plus a combining mark).
    public static func strip(_ text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        guard let start = scalars.firstIndex(where: { !contains($0) }),
              let end = scalars.lastIndex(where: { !contains($0) }) else { return "" }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: scalars[start...end])
        return String(out)
    }
}

extension Manifest.Composition {
    /// The full prompt for `text`, byte-identical to mlx-lc's `tasks.format_prompt` (the exporter
    /// rendered the chat template around a placeholder, so the app never renders templates).
    public func prompt(for text: String) throws -> String {
        let body = PythonWhitespace.strip(text)
        if body.isEmpty { throw LCError.emptyInput }
        return prompt.prefix + body + prompt.suffix
    }
}
