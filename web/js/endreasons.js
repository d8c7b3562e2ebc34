// How a call ended, in words for one of its participants (a `call_state`, or a past call as
// the history pages give it): the call page, the history pages and the refund review say it
// the same way. Small on purpose: the history pages need this, not the call page's view.

export function otherSide(state) {
  return state.role === "host" ? state.caller : state.host;
}

/** Why the call ended, in words for this participant. `byMe`: this page hung up. */
export function endReasonWords(state, { byMe = false, awaySide = null } = {}) {
  const host = state.role === "host";
  const other = otherSide(state).name;
  switch (state.end_reason) {
    case "hung_up": return byMe ? "You hung up." : `${other} hung up.`;
    case "declined": return host ? "You declined the call." : `${other} declined the call.`;
    case "cancelled": return host ? `${other} hung up before you answered.` : "You cancelled the call.";
    case "missed": return host ? `You missed this call from ${other}.` : `${other} did not answer.`;
    case "declined_terms": return host ? `${other} declined the terms. Nobody was charged.`
      : "You declined the terms. Nobody was charged.";
    case "no_agreement": return "No terms were agreed in time. Nobody was charged.";
    case "payment_timeout": return "The payment was not completed in time. Nothing was charged.";
    case "payment_failed": return "The payment did not go through. Nothing was charged.";
    case "completed": return "The paid time is over and the call was not extended.";
    case "free_cap_reached": return "This free call reached the free tier's time limit.";
    case "away_too_long":
      return `${awaySide || "One side"} was away too long and the call ended. Unused paid time is on record.`;
    default: return `The call ended (${state.end_reason || "no reason given"}).`;
  }
}
