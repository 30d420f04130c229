// The Flex Consumption function app (Python 3.11) with a system-assigned identity. The host reaches its storage with
// that identity (AzureWebJobsStorage__accountName), so does the app (shared/connections.py), and so does the
// deployment (the package container). FUNCTIONS_WORKER_RUNTIME and the runtime version live in functionAppConfig.
param location string
param tags object
param resourceToken string
param maximumInstanceCount int
param storageAccountName string
param deploymentContainerUrl string
param applicationInsightsConnectionString string
@description('The app\'s own settings (README, Configuration); the host\'s settings are added here.')
param appSettings object

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: availability zones for Flex Consumption exist in some regions only; set zoneRedundant where the chosen region offers it
  name: 'plan-${resourceToken}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: the portal and Event Grid call the app over the internet; every call carries a function key, portal calls a Standard Webhooks signature
  // checkov:skip=CKV_AZURE_17: callers authenticate with function keys and HMAC signatures; Event Grid cannot present a client certificate
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales per function from zero; always-ready instances would be paid for idle and no latency target needs them
  // checkov:skip=CKV_AZURE_213: the health-check probe of App Service instances does not apply to Flex Consumption; GET /api/health is there for an availability test
  name: 'func-${resourceToken}'
  location: location
  tags: union(tags, { 'azd-service-name': 'pastdue' })
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: 2048
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov reads this resource as the site configuration (Microsoft.Web/sites/config), but it holds app settings only;
  // the site configuration is `siteConfig` above.
  // checkov:skip=CKV_AZURE_13: app settings, not siteConfig; authentication is function keys + signatures (README)
  // checkov:skip=CKV_AZURE_63: app settings, not siteConfig; Flex Consumption logs go to Application Insights, not to HTTP log files
  // checkov:skip=CKV_AZURE_65: app settings, not siteConfig; detailed error pages are an App Service web-server feature
  // checkov:skip=CKV_AZURE_66: app settings, not siteConfig; failed-request tracing is an IIS feature, absent on Linux
  // checkov:skip=CKV_AZURE_80: app settings, not siteConfig; a Python app has no .NET Framework version
  // checkov:skip=CKV_AZURE_88: app settings, not siteConfig; Flex Consumption runs from the deployment blob, not Azure Files
  // checkov:skip=CKV_AZURE_222: app settings, not siteConfig; public access is discussed on the site above
  parent: app
  name: 'appsettings'
  properties: union(appSettings, {
    AzureWebJobsStorage__accountName: storageAccountName
    AzureWebJobsStorage__credential: 'managedidentity'
    APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'
  })
}

// Publishing with a user name and password stays off: azd deploys through Entra ID.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: { allow: false }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: { allow: false }
}

output name string = app.name
output principalId string = app.identity.principalId
