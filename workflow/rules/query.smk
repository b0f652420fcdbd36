# rules of the query family (see docs/dataflow.md)
