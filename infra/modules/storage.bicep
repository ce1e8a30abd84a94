// One storage account for three jobs, all reached with Microsoft Entra ID (shared key access is
// off, so no connection string with a key exists for it):
//   - the Functions host storage (AzureWebJobsStorage__*),
//   - the blob container Flex Consumption deploys the app package to,
//   - the chat history tables.

@description('Name of the storage account (3 to 24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Region of the storage account.')
param location string

@description('Tags for the storage account.')
param tags object

@description('Replication. Geo-redundant by default because the account holds the chat history.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param skuName string = 'Standard_GRS'

@description('Blob container that holds the deployment package of the function app.')
param deploymentContainerName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  //checkov:skip=CKV_AZURE_35:The function app is not integrated with a virtual network, so a default Deny rule would lock it out; every request must still carry an Entra ID token because shared key access is off.
  //checkov:skip=CKV_AZURE_59:Public endpoint on purpose, for the same reason as CKV_AZURE_35; access is Entra ID only (allowSharedKeyAccess false, allowBlobPublicAccess false). Add a VNet and private endpoints to close it.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// The chat tables, under the app's default table prefix `chat` (CHAT_TABLE_PREFIX). The app also
// creates its tables on first use; declaring them lets a deployer see them before the first request.
resource messagesTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: 'chatmessages'
}

resource conversationsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: 'chatconversations'
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// The queue background responses wait in (CHAT_QUEUE_NAME); the app also creates it on first use.
resource backgroundQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: 'chat-responses'
}

@description('Name of the storage account.')
output name string = storage.name

@description('Blob endpoint, with a trailing slash.')
output blobEndpoint string = storage.properties.primaryEndpoints.blob

@description('Queue endpoint, with a trailing slash: CHAT_QUEUE__queueServiceUri.')
output queueEndpoint string = storage.properties.primaryEndpoints.queue

@description('Name of the queue of background responses: CHAT_QUEUE_NAME.')
output backgroundQueueName string = backgroundQueue.name

@description('Table endpoint, with a trailing slash: CHAT_STORAGE_ENDPOINT.')
output tableEndpoint string = storage.properties.primaryEndpoints.table

@description('Name of the deployment package container.')
output deploymentContainerName string = deploymentContainer.name

@description('Names of the chat tables, which the app\'s table role is scoped to.')
output tableNames array = [
  messagesTable.name
  conversationsTable.name
]
