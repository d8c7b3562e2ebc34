// Money as people read it, from integer cents with integer and string operations only (never
// floats): 1399 → "$13.99", -320 → "−$3.20", 123456 → "$1,234.56".

/** Integer cents → "$13.99"; negative amounts get a minus sign ("−$3.20"), zero is "$0.00". */
export function moneyText(cents) {
  if (!Number.isSafeInteger(cents)) throw new TypeError(`not an amount in cents: ${cents}`);
  const sign = cents < 0 ? "\u2212" : "";
  const digits = String(Math.abs(cents)).padStart(3, "0");
  const whole = digits.slice(0, -2).replace(/\B(?=(\d{3})+$)/g, ",");
  return `${sign}$${whole}.${digits.slice(-2)}`;
}

/** The sum of integer cents (exact: integers add exactly well below 2^53). */
export function sumCents(amounts) {
  return amounts.reduce((total, cents) => total + cents, 0);
}
