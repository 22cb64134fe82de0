"""Speed and scale benchmarks against DCMTK and peers; each prints ratios side by side."""
