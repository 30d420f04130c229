"""pastdue's domain package: the past-due balance lifecycle, free of the Azure Functions runtime."""
