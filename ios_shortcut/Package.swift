// swift-tools-version:6.0
// MLXLCShortcut: run an mlx-lc Core ML export on iPhone from a Shortcut.
//
// MLXLCCore is Foundation-only and builds and tests on Linux (`swift build && swift test`);
// MLXLCCoreML and MLXLCIntents compile to nothing where Core ML / App Intents are missing.
// No external dependencies: everything the app needs is here.
import PackageDescription

let package = Package(
    name: "MLXLCShortcut",
    platforms: [.iOS("18.0"), .macOS("15.0")],
    products: [
        .library(name: "MLXLCCore", targets: ["MLXLCCore"]),
        .library(name: "MLXLCCoreML", targets: ["MLXLCCoreML"]),
        .library(name: "MLXLCIntents", targets: ["MLXLCIntents"]),
    ],
    targets: [
        .target(name: "MLXLCCore"),
        // Swift 5 mode for the Apple-framework targets: MLModel/MLState are not Sendable, and these
        // targets cannot be compiled on the Linux machine that checks the rest.
        .target(name: "MLXLCCoreML", dependencies: ["MLXLCCore"],
                swiftSettings: [.swiftLanguageMode(.v5)]),
        .target(name: "MLXLCIntents", dependencies: ["MLXLCCore", "MLXLCCoreML"],
                swiftSettings: [.swiftLanguageMode(.v5)]),
        .testTarget(name: "MLXLCCoreTests", dependencies: ["MLXLCCore"],
                    exclude: ["Golden"]),
    ]
)
