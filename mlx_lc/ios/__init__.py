"""The Python side of ios_shortcut/: the reference sampler the Swift app must match bit for bit,
the golden files the Swift tests read, the App Intents enum generated from a manifest, and the
importable Shortcut file."""
