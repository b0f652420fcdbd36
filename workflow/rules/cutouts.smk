# rules of the cutouts family (see docs/dataflow.md)
