"""PayPal's answers that are not what was asked for, one shape for every API we call."""


class PayPalError(Exception):
    """PayPal said no for good (a 4xx other than 429, e.g. INSTRUMENT_DECLINED, ORDER_NOT_APPROVED):
    `name` and `issue` as PayPal gave them, the HTTP `status`, and PayPal's `details`."""

    def __init__(self, name, issue, message, status=None, details=()):
        super().__init__(message)
        self.name, self.issue, self.status, self.details = name, issue, status, list(details)


class PayPalUnavailable(Exception):
    """No usable answer from PayPal after every retry: whether it acted is unknown (asking again
    with the same request id is safe)."""


def refusal(status, answer):
    """The PayPalError of a refusal's JSON body (PayPal's `name`, `message`, `details[].issue`)."""
    answer = answer if isinstance(answer, dict) else {}
    details = answer.get("details") or []
    issue = details[0].get("issue", "") if details and isinstance(details[0], dict) else ""
    return PayPalError(answer.get("name", ""), issue, f"HTTP {status} {answer.get('name', '')}: "
                       f"{answer.get('message', '')}", status, details)
