# rules of the tables family (see docs/dataflow.md)
