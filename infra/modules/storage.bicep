// The storage account of the host and the app: tables, queues and the deployment package container.
// Shared keys are refused: every caller (host, app, deployment) authenticates with Entra ID.
param location string
param tags object
param resourceToken string

// Names the code uses (shared/storage/layout.py, function triggers, README); the work queue is for the scale-out.
var tableNames = ['accounts', 'due', 'audit', 'rejections', 'webhooks', 'gateway', 'sentemails', 'testclock']
var lifecycleQueueName = 'lifecycle-events'
var queueNames = [
  'payment-failed'
  'payment-failed-poison'
  lifecycleQueueName
  'retention-work'
  'retention-work-poison'
]
var deploymentContainerName = 'app-package-${take(resourceToken, 7)}'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_43: the name is 'st' + uniqueString(): 15 lower-case letters and digits, which checkov cannot evaluate
  // checkov:skip=CKV_AZURE_35: no virtual network in this template; the Flex app reaches storage over its public endpoint, with Entra ID only (shared keys off)
  // checkov:skip=CKV_AZURE_59: as above: public endpoint, but no anonymous access (allowBlobPublicAccess false) and no shared keys
  name: 'st${resourceToken}'
  location: location
  tags: tags
  kind: 'StorageV2'
  // Billing state: geo-zone-redundant, so a zone or a region outage loses no account data.
  sku: { name: 'Standard_GZRS' }
  properties: {
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: { enabled: true, keyType: 'Account' }
        file: { enabled: true, keyType: 'Account' }
        queue: { enabled: true, keyType: 'Account' }
        table: { enabled: true, keyType: 'Account' }
      }
    }
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: { enabled: true, days: 7 }
    containerDeleteRetentionPolicy: { enabled: true, days: 7 }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: deploymentContainerName
  properties: { publicAccess: 'None' }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for name in tableNames: {
    parent: tableService
    name: name
  }
]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for name in queueNames: {
    parent: queueService
    name: name
  }
]

output name string = account.name
output deploymentContainerUrl string = '${account.properties.primaryEndpoints.blob}${deploymentContainerName}'
output lifecycleQueueName string = lifecycleQueueName
