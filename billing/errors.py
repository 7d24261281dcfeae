"""Errors shared by the billing package (its own module, so that any module can raise them without
importing the payment state machine)."""


class FormErrors(Exception):
    """Input that cannot be accepted: a message for each field."""

    def __init__(self, errors):
        super().__init__(errors)
        self.errors = errors
