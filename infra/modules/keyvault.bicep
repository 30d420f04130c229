// The one secret of the app, PORTAL_WEBHOOK_SECRET, in a Key Vault with RBAC and purge protection. The app setting
// references the versionless secret URI, so a new version (a rotation) reaches the app without a redeployment.
param location string
param tags object
param resourceToken string
@secure()
param portalWebhookSecret string

var portalWebhookSecretName = 'portal-webhook-secret'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: no virtual network in this template: the app resolves its Key Vault reference over the public endpoint; access is RBAC, one secret, one reader
  // checkov:skip=CKV_AZURE_189: as above; restrict the network together with VNet integration of the app
  name: 'kv-${resourceToken}'
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enablePurgeProtection: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource webhookSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  // checkov:skip=CKV_AZURE_41: an expired secret stops the app reading it; the secret is rotated with the portal on purpose (README: rotating the webhook secret)
  name: portalWebhookSecretName
  properties: {
    value: portalWebhookSecret
    contentType: 'Standard Webhooks secret(s): whsec_..., space-separated during a rotation'
  }
}

output name string = vault.name
output portalWebhookSecretName string = webhookSecret.name
output portalWebhookSecretUri string = webhookSecret.properties.secretUri
