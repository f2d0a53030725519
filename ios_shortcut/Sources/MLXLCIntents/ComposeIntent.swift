#if canImport(AppIntents) && canImport(CoreML)
import AppIntents
import Foundation
import MLXLCCore
import MLXLCCoreML

/// "Summary in Spanish", "Reply, professional"...: one pass of the installed composition over
/// the text, returned as a String so a Shortcut can pass it on (copy, share, paste).
///
/// Shortcuts gives a background intent about 30 s. The model is loaded once and kept warm by
/// `ModelHost`, the reply is capped, and when the budget runs out the intent asks to continue
/// in the foreground and goes on from the same KV cache.
@available(iOS 18.0, macOS 15.0, *)
public struct ComposeReplyIntent: AppIntent {
    public static let title: LocalizedStringResource = "Compose with MLX LC"
    public static let description = IntentDescription(
        "Summarise or reply to a conversation, translated or in a chosen tone, on device in one pass.")
    public static let openAppWhenRun: Bool = false

    /// Seconds of background time to use before asking to continue in the foreground; under
    /// the ~30 s Shortcuts allows, leaving room to load the model and return.
    public static let backgroundBudget: TimeInterval = 22
    /// No reply is longer than this, whatever the Shortcut asks.
    public static let hardCap = 1024

    @Parameter(title: "Text", description: "The conversation or text to work on.")
    public var text: String

    /// Listed from the installed export's manifest.json when Shortcuts asks (`CompositionQuery`).
    @Parameter(title: "Mode", description: "What to write: the compositions the installed model offers.")
    public var composition: CompositionEntity

    @Parameter(title: "Longest reply", description: "In tokens; empty: the export's max_new_tokens.")
    public var maxTokens: Int?

    public static var parameterSummary: some ParameterSummary {
        Summary("\(\.$composition) of \(\.$text)") {
            \.$maxTokens
        }
    }

    public init() {}

    public func perform() async throws -> some IntentResult & ReturnsValue<String> & ProvidesDialog {
        do {
            let reply = try await ModelHost.shared.compose(
                text: text, composition: composition.id, maxTokens: maxTokens, hardCap: Self.hardCap,
                backgroundBudget: Self.backgroundBudget
            ) {
                let ask: IntentDialog = "The reply needs more time than Shortcuts allows in the background. Continue in MLX LC?"
                try await requestToContinueInForeground(ask)
            }
            let answer = reply.text.trimmingCharacters(in: .whitespacesAndNewlines)
            // Say when the start of the conversation was left out; the value stays the reply alone.
            let shown = reply.truncation.map { "\($0.notice)\n\n\(answer)" } ?? answer
            return .result(value: answer, dialog: "\(shown)")
        } catch let error as LCError {
            throw IntentFailure(error)
        }
    }
}

@available(iOS 18.0, macOS 15.0, *)
@available(*, deprecated, message: "ForegroundContinuableIntent is deprecated from iOS 26; iOS 18 needs it")
extension ComposeReplyIntent: ForegroundContinuableIntent {}

/// An `LCError` as Shortcuts shows it: its one-line description.
@available(iOS 18.0, macOS 15.0, *)
public struct IntentFailure: Error, CustomLocalizedStringResourceConvertible {
    public let message: String

    public init(_ error: LCError) { message = error.localizedDescription }

    public var localizedStringResource: LocalizedStringResource { "\(message)" }
}

/// The App Shortcuts that appear without setup. App Shortcuts are read from the app target, so
/// the app compiles this folder into itself (see ios_shortcut/App/project.yml).
///
/// The "\(.applicationName) \(\.$composition)" phrases are made from `CompositionQuery`'s
/// suggested entities; the app calls `updateAppShortcutParameters()` on launch and after an
/// import, so Siri learns the modes of a newly installed export.
@available(iOS 18.0, macOS 15.0, *)
public struct MLXLCShortcuts: AppShortcutsProvider {
    public static var appShortcuts: [AppShortcut] {
        AppShortcut(intent: ComposeReplyIntent(),
                    phrases: ["\(.applicationName) \(\.$composition)",
                              "Compose with \(.applicationName)",
                              "Reply with \(.applicationName)"],
                    shortTitle: "Compose",
                    systemImageName: "text.bubble")
    }
}
#endif
