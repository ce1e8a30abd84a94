// Azure OpenAI account that accepts Microsoft Entra ID tokens only, and its chat model deployment.

@description('Name of the account; also its custom subdomain, which Entra ID authentication requires.')
param name string

@description('Region of the account. The chat model and SKU must be offered there.')
param location string

@description('Tags for the account.')
param tags object

@description('Name of the chat model deployment: AZURE_OPENAI_CHAT_DEPLOYMENT.')
param chatDeploymentName string

@description('Model name.')
param chatModelName string

@description('Model version.')
param chatModelVersion string

@description('Deployment SKU, for example GlobalStandard, DataZoneStandard or Standard.')
param chatDeploymentSkuName string

@description('Capacity in units of 1,000 tokens per minute.')
@minValue(1)
param chatDeploymentCapacity int

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' = {
  //checkov:skip=CKV_AZURE_134:The function app is not integrated with a virtual network and must reach this endpoint; local auth is disabled, so every call needs an Entra ID token for a principal holding Cognitive Services OpenAI User.
  //checkov:skip=CKV_AZURE_238:The account makes no outbound calls (no customer-managed key, no data sources), so an identity of its own would hold nothing; the app's user-assigned identity calls it, not the reverse.
  name: name
  location: location
  tags: tags
  kind: 'OpenAI'
  sku: {
    name: 'S0'
  }
  properties: {
    customSubDomainName: name
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
    }
  }
}

resource chatDeployment 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = {
  parent: account
  name: chatDeploymentName
  sku: {
    name: chatDeploymentSkuName
    capacity: chatDeploymentCapacity
  }
  properties: {
    model: {
      format: 'OpenAI'
      name: chatModelName
      version: chatModelVersion
    }
    versionUpgradeOption: 'OnceCurrentVersionExpired'
  }
}

@description('Name of the account.')
output name string = account.name

@description('Endpoint: AZURE_OPENAI_ENDPOINT.')
output endpoint string = account.properties.endpoint

@description('Name of the chat deployment.')
output chatDeploymentName string = chatDeployment.name
