"""The scan() builder (being written)."""


def scan(fn, sequences=None, outputs_info=None, non_sequences=None, n_steps=None,
         truncate_gradient=-1, go_backwards=False, name=None, strict=False, return_list=False):
    raise NotImplementedError("scan is not implemented yet")


def map(fn, sequences, non_sequences=None, go_backwards=False, name=None):
    raise NotImplementedError("scan is not implemented yet")


def reduce(fn, sequences, outputs_info, non_sequences=None, go_backwards=False, name=None):
    raise NotImplementedError("scan is not implemented yet")


def foldl(fn, sequences, outputs_info, non_sequences=None, name=None):
    raise NotImplementedError("scan is not implemented yet")


def foldr(fn, sequences, outputs_info, non_sequences=None, name=None):
    raise NotImplementedError("scan is not implemented yet")


def until(condition):
    raise NotImplementedError("scan is not implemented yet")
