# rules of the paper family (see docs/dataflow.md)
