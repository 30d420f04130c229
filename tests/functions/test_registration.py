from __future__ import annotations

import function_app


def test_the_app_registers_exactly_the_triggers_of_the_design() -> None:
    functions = {f.get_function_name(): f.get_trigger() for f in function_app.app.get_functions()}

    triggers = {name: trigger.type for name, trigger in functions.items()}
    assert triggers["payment_failed"] == "queueTrigger"
    assert functions["payment_failed"].queue_name == "payment-failed"
    assert triggers["retention"] == "timerTrigger"
    assert functions["retention"].schedule == "0 */15 * * * *"
    assert triggers["retention_worker"] == "queueTrigger"
    assert functions["retention_worker"].queue_name == "retention-work"
    # infra/modules/delivery-reports.bicep subscribes ACS delivery reports to a function of exactly this name.
    assert triggers["email_delivery_report"] == "eventGridTrigger"
    http = {name for name, kind in triggers.items() if kind == "httpTrigger"}
    assert set(triggers) - http == {"payment_failed", "retention", "retention_worker", "email_delivery_report"}
    assert all(functions[name].route for name in http)
