# Makes tests/unit a package, so its test modules cannot clash with same-named ones elsewhere
# (e.g. tests/integration) when pytest collects several test directories in one run.
