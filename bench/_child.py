"""``python -m bench._child SPEC``: one system of one case, in a fresh process.

The parent already set the thread variables in the environment this process inherits.
"""

import sys

from bench.harness import child_main

if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1]))
