"""The modules every stage imports: one directory, so `dvc.yaml` lists it as one dep per stage.

DVC rewrites the whole `dvc.lock` after each stage it runs or restores, and a dep listed file by
file is four lines of it; `tests/test_registry.py` checks every module here is in every stage's
imports, so the folder as one dep reruns no stage that a file dep would not.
"""
