"""The Great Expectations suites lossval ships (JSON files; installed as ``lossval.expectations``)."""
