"""bptrace-exec: declarative YAML profiles in, bpftrace programs run, exec events out.

The pipeline, one module per stage:
    spec -> codegen -> runner -> decode -> assemble -> render -> cli
"""

__version__ = "0.1.0"
