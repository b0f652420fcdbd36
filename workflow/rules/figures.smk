# rules of the figures family (see docs/dataflow.md)
