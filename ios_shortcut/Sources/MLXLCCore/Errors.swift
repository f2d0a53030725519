import Foundation

/// Everything a person can fix, each as one sentence they can read on the phone.
public enum LCError: Error, Equatable, Sendable {
    /// No manifest.json in any of the places the app looks.
    case noModelInstalled(searched: [String])
    /// manifest.json is unreadable or breaks the schema (mlx_lc/manifest.py).
    case invalidManifest(String)
    /// The manifest and the files beside it (tokenizer, Core ML package) disagree.
    case manifestMismatch(String)
    /// tokenizer.json uses a component this app does not implement.
    case unsupportedTokenizer(String)
    /// The prompt cannot fit the context even after dropping the whole conversation.
    case inputTooLong(promptTokens: Int, limit: Int)
    case emptyInput
    case unknownComposition(String, available: [String])
    /// The model failed while running.
    case modelFailure(String)
    /// One reply at a time: the model has one cache.
    case busy
}

extension LCError: LocalizedError {
    public var errorDescription: String? {
        switch self {
        case .noModelInstalled(let searched):
            return "No model installed. Export one with `mlx-lc export coreml` and copy the folder "
                + "(manifest.json, the .mlpackage and tokenizer files) into the app; looked in: "
                + searched.joined(separator: ", ") + "."
        case .invalidManifest(let why):
            return "The model's manifest.json is not valid: \(why)."
        case .manifestMismatch(let why):
            return "The installed model does not match its manifest: \(why). Re-export it with mlx-lc."
        case .unsupportedTokenizer(let why):
            return "The model's tokenizer is not supported: \(why)."
        case .inputTooLong(let tokens, let limit):
            return "The text is too long: the prompt needs \(tokens) tokens but the model's context "
                + "leaves room for \(limit)."
        case .emptyInput:
            return "There is no text to work on."
        case .unknownComposition(let name, let available):
            return "This model has no \"\(name)\" mode; it offers: "
                + available.joined(separator: ", ") + "."
        case .modelFailure(let why):
            return "The model failed: \(why)."
        case .busy:
            return "Another reply is still being written; try again when it is done."
        }
    }
}
