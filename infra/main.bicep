// pastdue on Azure: everything `azd up` provisions. Identity-based connections only: the storage account refuses
// shared keys, ACS is reached through its endpoint, App Insights ingestion takes Entra tokens, and the one secret
// (the portal's webhook secret) lives in Key Vault, referenced from the app settings.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; it names the resource group and seeds the resource names.')
param environmentName string

@minLength(1)
@description('Region of every resource (one that offers the Flex Consumption plan).')
@metadata({ azd: { type: 'location' } })
param location string

@description('Where the Communication Services data is kept (ACS and its Email service must share it).')
param communicationDataLocation string = 'Europe'

@secure()
@minLength(38)
@description('Standard Webhooks secret shared with the portal: whsec_ + base64 of 24-64 random bytes; several, space-separated, during a rotation.')
param portalWebhookSecret string

@description('Base of the settle-balance links in emails.')
param portalBaseUrl string

@description('The timer\'s six-field NCRONTAB schedule, seconds first (UTC).')
param retentionSchedule string = '0 */15 * * * *'

@description('Reminder emails, days after the payment failed (comma-separated).')
param reminderDays string = '7,14'

@minValue(0)
@maxValue(60)
@description('Warned and the final notice, days before cancellation.')
param warnDaysBeforeCancellation int = 5

@minValue(1)
@maxValue(365)
@description('Days past due before the service is cancelled (Disabled).')
param gracePeriodDays int = 30

@description('Warnings before deletion, days before the deletion date (comma-separated).')
param deletionWarningDays string = '30,7,1'

@minValue(90)
@maxValue(3650)
@description('Days after cancellation before the data is deleted (never fewer than 90).')
param retentionDays int = 90

@minValue(10)
@maxValue(1700)
@description('A timer run stops after this many seconds and continues on the next run.')
param retentionTimeBudgetSeconds int = 240

@description('Shards of the due index: the timer sends one sweep per shard (docs/retention.md, sizing).')
@minValue(1)
@maxValue(256)
param retentionShards int = 8

@description('Accounts per retention review batch on the work queue.')
@minValue(1)
@maxValue(100)
param retentionBatchSize int = 20

@minValue(1)
@maxValue(3600)
@description('Accepted clock skew of signed portal calls, in seconds.')
param webhookToleranceSeconds int = 300

@description('Remittance details shown to invoice (wire) customers.')
param remittanceBeneficiary string

@description('IBAN of the remittance account.')
param remittanceIban string

@description('BIC of the remittance account.')
param remittanceBic string

@description('Subscribe the email_delivery_report function to ACS delivery reports; Event Grid checks that the function exists, so this is turned on after the first code deployment (azure.yaml postdeploy hook).')
param subscribeDeliveryReports bool = false

@maxValue(1000)
@minValue(1)
@description('Upper bound of Flex Consumption instances.')
param maximumInstanceCount int = 100

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }

resource group 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: group
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: group
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
  }
}

module communication 'modules/communication.bicep' = {
  name: 'communication'
  scope: group
  params: {
    tags: tags
    resourceToken: resourceToken
    dataLocation: communicationDataLocation
  }
}

module vault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: group
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    portalWebhookSecret: portalWebhookSecret
  }
}

module app 'modules/function-app.bicep' = {
  name: 'function-app'
  scope: group
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    maximumInstanceCount: maximumInstanceCount
    storageAccountName: storage.outputs.name
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    appSettings: {
      PORTAL_WEBHOOK_SECRET: '@Microsoft.KeyVault(SecretUri=${vault.outputs.portalWebhookSecretUri})'
      PORTAL_BASE_URL: portalBaseUrl
      ACS_ENDPOINT: communication.outputs.endpoint
      ACS_SENDER_ADDRESS: communication.outputs.senderAddress
      LIFECYCLE_QUEUE: storage.outputs.lifecycleQueueName
      RETENTION_SCHEDULE: retentionSchedule
      REMINDER_DAYS: reminderDays
      WARN_DAYS_BEFORE_CANCELLATION: string(warnDaysBeforeCancellation)
      GRACE_PERIOD_DAYS: string(gracePeriodDays)
      DELETION_WARNING_DAYS: deletionWarningDays
      RETENTION_DAYS: string(retentionDays)
      RETENTION_TIME_BUDGET_SECONDS: string(retentionTimeBudgetSeconds)
      RETENTION_SHARDS: string(retentionShards)
      RETENTION_BATCH_SIZE: string(retentionBatchSize)
      WEBHOOK_TOLERANCE_SECONDS: string(webhookToleranceSeconds)
      REMITTANCE_BENEFICIARY: remittanceBeneficiary
      REMITTANCE_IBAN: remittanceIban
      REMITTANCE_BIC: remittanceBic
    }
  }
}

module access 'modules/access.bicep' = {
  name: 'access'
  scope: group
  params: {
    principalId: app.outputs.principalId
    storageAccountName: storage.outputs.name
    communicationServiceName: communication.outputs.name
    keyVaultName: vault.outputs.name
    portalWebhookSecretName: vault.outputs.portalWebhookSecretName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

module deliveryReports 'modules/delivery-reports.bicep' = {
  name: 'delivery-reports'
  scope: group
  params: {
    tags: tags
    resourceToken: resourceToken
    communicationServiceName: communication.outputs.name
    functionAppName: app.outputs.name
    subscribe: subscribeDeliveryReports
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = group.name
output AZURE_FUNCTION_APP_NAME string = app.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output ACS_ENDPOINT string = communication.outputs.endpoint
output ACS_SENDER_ADDRESS string = communication.outputs.senderAddress
output AZURE_KEY_VAULT_NAME string = vault.outputs.name
output SUBSCRIBE_DELIVERY_REPORTS bool = subscribeDeliveryReports
