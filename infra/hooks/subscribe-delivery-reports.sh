#!/bin/sh
# azd postdeploy hook: turn on the Event Grid subscription of ACS delivery reports once the deployed code has the
# email_delivery_report function (Event Grid refuses a subscription to a function that does not exist).
set -eu
if [ "${SUBSCRIBE_DELIVERY_REPORTS:-false}" = "true" ]; then
  exit 0
fi
if ! grep -rqs "def email_delivery_report" functions/; then
  echo "email_delivery_report is not in this code yet: ACS delivery reports stay unsubscribed."
  exit 0
fi
azd env set SUBSCRIBE_DELIVERY_REPORTS true
azd provision --no-prompt
