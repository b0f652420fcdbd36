# rules of the mock_sky family (see docs/dataflow.md)
