"""The Python side of ios_shortcut/: the reference sampler the Swift app must match bit for bit,
the golden files the Swift tests read, and the importable Shortcut file. (The app reads an
export's compositions from its manifest.json at run time; nothing is generated for it.)"""
