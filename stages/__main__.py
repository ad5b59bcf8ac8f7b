"""`python -m stages ...` is `textpipe ...` (what torchrun launches)."""
from .cli import main

main()
