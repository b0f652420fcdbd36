# rules of the train family (see docs/dataflow.md)
