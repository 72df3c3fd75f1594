"""``python -m bench``: set the thread variables first, then run the suite."""

import sys

from bench._env import set_thread_env

set_thread_env(sys.argv[1:])  # before anything imports numpy, numba, JAX or PyTensor

from bench.harness import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
