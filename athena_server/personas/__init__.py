"""Personas: packaged agent roles run over a git range (code review). Kept free of imports so the mock
provider can read the review input format (`prompt`) without loading the control plane."""
