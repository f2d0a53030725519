import AppIntents
import MLXLCCoreML
import SwiftUI

@main
struct MLXLCApp: App {
    var body: some Scene {
        WindowGroup {
            ContentView()
                // Compile and load the model while the app is open, so the first Shortcut run
                // does not spend its background time on it.
                .task {
                    // Siri's "MLX LC <mode>" phrases name the installed modes: refresh them for
                    // whatever export is installed now (it may have changed in the Files app).
                    MLXLCShortcuts.updateAppShortcutParameters()
                    try? await ModelHost.shared.prewarm()
                }
        }
    }
}
