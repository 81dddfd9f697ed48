"""Errors that name the input and what is wrong with it."""


class InputError(ValueError):
    """Raised when an input file, URL or table cannot be used.

    The message always starts with the input's name, so that a failed run in the UI says at
    a glance which file to look at: ``"<input>: <what is wrong>"``.
    """

    def __init__(self, source: object, problem: str):
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")
