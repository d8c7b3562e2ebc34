"""PayPal's error bodies: {"name", "message", "debug_id", "details": [{"field", "value",
"location", "issue", "description"}], "links"}. Names, messages and issue descriptions are
copied from PayPal's published OpenAPI documents (paypal/paypal-rest-api-specifications:
checkout_orders_v2.json, payments_payment_v2.json, payments_payouts_batch_v1.json)."""

# The `name` and `message` of each status, identical in Orders v2 and Payments v2.
STATUS_NAMES = {
    400: ("INVALID_REQUEST", "Request is not well-formed, syntactically incorrect, or violates schema."),
    401: ("AUTHENTICATION_FAILURE",
          "Authentication failed due to missing authorization header, or invalid authentication credentials."),
    403: ("NOT_AUTHORIZED", "Authorization failed due to insufficient permissions."),
    404: ("RESOURCE_NOT_FOUND", "The specified resource does not exist."),
    409: ("RESOURCE_CONFLICT", "The server has detected a conflict while processing this request."),
    415: ("UNSUPPORTED_MEDIA_TYPE", "The server does not support the request payload's media type."),
    422: ("UNPROCESSABLE_ENTITY",
          "The requested action could not be performed, semantically incorrect, or failed business validation."),
    500: ("INTERNAL_SERVER_ERROR", "An internal server error occurred."),
    503: ("SERVICE_UNAVAILABLE", "Service Unavailable."),
}

# Issue descriptions as the specifications word them (Orders v2 unless noted).
ISSUES = {
    "MALFORMED_REQUEST_JSON": "The request JSON is not well formed.",
    "MISSING_REQUIRED_PARAMETER": "A required field / parameter is missing.",
    "INVALID_PARAMETER_SYNTAX": "The value of a field does not conform to the expected format.",
    "INVALID_PARAMETER_VALUE": "The value of a field is invalid.",
    "INVALID_STRING_LENGTH": "The value of a field is either too short or too long.",
    "INVALID_ARRAY_MAX_ITEMS": "The number of items in an array parameter is too large.",
    "INVALID_ARRAY_MIN_ITEMS": "The number of items in an array parameter is too small.",
    "INVALID_RESOURCE_ID": "Specified resource ID does not exist. Please check the resource ID and try again.",
    "INVALID_ACCOUNT_STATUS": "Account validations failed for the user.",
    "DECIMAL_PRECISION": "If the currency supports decimals, only two decimal place precision is supported.",
    "CANNOT_BE_ZERO_OR_NEGATIVE": "Must be greater than zero. If the currency supports decimals, only two decimal "
                                  "place precision is supported.",
    "MAX_VALUE_EXCEEDED": "Should be less than or equal to 999999999999999.99.",
    "INVALID_CURRENCY_CODE": "Currency code is invalid or is not currently supported. Please refer "
                             "https://developer.paypal.com/api/rest/reference/currency-codes/ for list of supported "
                             "currency codes.",
    "UNSUPPORTED_INTENT": "`intent=AUTHORIZE` is not supported for multiple purchase units. Only `intent=CAPTURE` "
                          "is supported.",
    "REFERENCE_ID_REQUIRED": "'reference_id' is required for each 'purchase_unit' if multiple 'purchase_unit' are "
                             "provided.",
    "DUPLICATE_REFERENCE_ID": "`reference_id` must be unique if multiple `purchase_unit` are provided.",
    "ORDER_NOT_APPROVED": "Payer has not yet approved the Order for payment. Please redirect the payer to the "
                          "'rel':'approve' url returned as part of the HATEOAS links within the Create Order call "
                          "or provide a valid `payment_source` in the request.",
    "ORDER_ALREADY_CAPTURED": "Order already captured.If 'intent=CAPTURE' only one capture per order is allowed.",
    "INSTRUMENT_DECLINED": "The instrument presented  was either declined by the processor or bank, or it can't be "
                           "used for this payment.",
    "PREVIOUS_REQUEST_IN_PROGRESS": "A previous request on this resource is currently in progress. Please wait for "
                                    "sometime and try again. It is best to space out the initial and the subsequent "
                                    "request(s) to avoid receiving this error.",
    # Payments v2 (captures.refund-422).
    "CAPTURE_FULLY_REFUNDED": "The capture has already been fully refunded",
    "REFUND_CAPTURE_CURRENCY_MISMATCH": "Refund must be in the same currency as the capture",
    "REFUND_NOT_ALLOWED": "Capture cannot be refunded.",
    "REFUND_TIME_LIMIT_EXCEEDED": "You are over the time limit to perform a refund on this capture",
    "REFUND_AMOUNT_EXCEEDED": "The refund amount must be less than or equal to the capture amount that has not yet "
                              "been refunded.",
    "PENDING_CAPTURE": "Cannot initiate a refund as the capture is pending. Capture is typically pending when the "
                       "payer has funded the transaction using e-check/bank funded.",
    "TRANSACTION_DISPUTED": "Partial refunds cannot be offered at this time because there is an open case on this "
                            "transaction. Visit the PayPal Resolution Center to review this case.",
}

# The `api` part of PayPal's information links: .../docs/api/orders/v2/#error-ORDER_NOT_APPROVED
ORDERS_API = "orders/v2"
PAYMENTS_API = "payments/v2"


class PayPalError(Exception):
    """An error answer in PayPal's format. `body(debug_id)` is what goes on the wire."""

    def __init__(self, status, details=(), api=ORDERS_API, links=(), name=None, message=None):
        default_name, default_message = STATUS_NAMES[status]
        self.status = status
        self.name = name or default_name
        self.message = message or default_message
        self.details = list(details)
        self.api = api
        self.extra_links = list(links)
        super().__init__(f"{status} {self.name}: {', '.join(d['issue'] for d in self.details) or self.message}")

    def body(self, debug_id):
        body = {"name": self.name, "message": self.message, "debug_id": debug_id}
        if self.details:
            body["details"] = self.details
        anchor = self.details[0]["issue"] if self.details else self.name
        body["links"] = self.extra_links + [
            {"href": f"https://developer.paypal.com/docs/api/{self.api}/#error-{anchor}",
             "rel": "information_link", "method": "GET"}]
        return body


def detail(issue, field=None, value=None, location="body", description=None):
    found = {"issue": issue, "description": description or ISSUES.get(issue, issue)}
    if field is not None:
        found = {"field": field, **({"value": value} if value is not None else {}), "location": location, **found}
    return found


def invalid(issue, field=None, value=None, api=ORDERS_API, location="body"):
    """400 INVALID_REQUEST."""
    return PayPalError(400, [detail(issue, field, value, location)], api)


def unprocessable(issue, field=None, value=None, api=ORDERS_API, links=()):
    """422 UNPROCESSABLE_ENTITY."""
    return PayPalError(422, [detail(issue, field, value)], api, links)


def not_found(resource_id, field="id", api=ORDERS_API):
    """404 RESOURCE_NOT_FOUND; `field` is the path parameter's name (id, capture_id, refund_id)."""
    return PayPalError(404, [detail("INVALID_RESOURCE_ID", field, resource_id, location="path")], api)


def authentication_failure():
    return PayPalError(401, [], ORDERS_API, name="AUTHENTICATION_FAILURE",
                       message="Authentication failed due to missing authorization header, or invalid "
                               "authentication credentials.")


def internal(status=500, api=ORDERS_API):
    return PayPalError(status, [], api)


class PayoutsError(Exception):
    """The Payouts v1 error format: {"name", "message", "debug_id", "information_link",
    "details": [{"field", "location", "issue", "link"?}], "links"}."""

    INFORMATION_LINK = "https://developer.paypal.com/docs/api/payments.payouts-batch/#errors"

    def __init__(self, status, name, message, details=()):
        self.status, self.name, self.message, self.details = status, name, message, list(details)
        super().__init__(f"{status} {name}: {message}")

    def body(self, debug_id):
        body = {"name": self.name, "message": self.message, "debug_id": debug_id,
                "information_link": self.INFORMATION_LINK, "links": []}
        if self.details:
            body["details"] = self.details
        return body


def payouts_validation(field, issue):
    return PayoutsError(400, "VALIDATION_ERROR", "Invalid request - see details",
                        [{"field": field, "location": "body", "issue": issue}])


def payouts_not_found():
    return PayoutsError(404, "INVALID_RESOURCE_ID", "Requested resource ID was not found.")
