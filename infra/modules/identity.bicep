// The one user-assigned managed identity of the app. The function app runs as it, reads its
// deployment package and host storage with it, and calls Azure OpenAI, Table Storage and
// Application Insights with it. Its roles are granted in main.bicep.

@description('Name of the identity.')
param name string

@description('Region of the identity.')
param location string

@description('Tags for the identity.')
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

@description('Resource ID, for the function app identity block and its deployment storage.')
output id string = identity.id

@description('Name of the identity.')
output name string = identity.name

@description('Client (application) ID: AZURE_CLIENT_ID for azure-identity and the Functions host.')
output clientId string = identity.properties.clientId

@description('Object (principal) ID: the principal that role assignments name.')
output principalId string = identity.properties.principalId
