// ACS email delivery reports to the app: an Event Grid system topic on the ACS resource and a subscription for
// Microsoft.Communication.EmailDeliveryReportReceived to the email_delivery_report function. Event Grid refuses a
// subscription to a function that does not exist yet, so `subscribe` turns on after the first code deployment.
param tags object
param resourceToken string
param communicationServiceName string
param functionAppName string
param subscribe bool

resource communication 'Microsoft.Communication/communicationServices@2023-04-01' existing = {
  name: communicationServiceName
}

resource app 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource topic 'Microsoft.EventGrid/systemTopics@2023-12-15-preview' = {
  name: 'evgt-${resourceToken}'
  location: 'global'
  tags: tags
  properties: {
    source: communication.id
    topicType: 'Microsoft.Communication.CommunicationServices'
  }
}

resource deliveryReports 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2023-12-15-preview' = if (subscribe) {
  parent: topic
  name: 'email-delivery-reports'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${app.id}/functions/email_delivery_report'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    filter: {
      includedEventTypes: ['Microsoft.Communication.EmailDeliveryReportReceived']
    }
    eventDeliverySchema: 'EventGridSchema'
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}
