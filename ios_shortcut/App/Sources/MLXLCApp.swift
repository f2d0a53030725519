import MLXLCCoreML
import SwiftUI

@main
struct MLXLCApp: App {
    var body: some Scene {
        WindowGroup {
            ContentView()
                // Compile and load the model while the app is open, so the first Shortcut run
                // does not spend its background time on it.
                .task { try? await ModelHost.shared.prewarm() }
        }
    }
}
