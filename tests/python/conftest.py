# pytester runs a test file of its own through pytest, to check what a user sees in a report.
pytest_plugins = ["pytester"]
