"""A corpus of hostile and careless inputs for every command (issue #12); see corpus.py."""
