// Keyless chat backend: a Flex Consumption Python function app that keeps conversations in Table
// Storage and calls Azure OpenAI, all through one user-assigned managed identity. No resource here
// hands out or reads a key: storage has shared key access off, Azure OpenAI and Application
// Insights have local auth off, and every grant is a role on that identity.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment. It names the resource group and tags every resource.')
param environmentName string

@minLength(1)
@description('Region of every resource, except Azure OpenAI when openAiLocation is set. It must offer the Flex Consumption plan.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Region of the Azure OpenAI account, where the chat model and SKU are offered; empty means location.')
param openAiLocation string = ''

@description('Object ID of the deploying user or group (azd always sets AZURE_PRINCIPAL_ID). It gets roles only with developerAccess.')
param principalId string = ''

@description('Whether principalId gets the roles to run the app locally against these resources: call the model, and read and write every conversation in the chat tables. Off by default: on a deployment with real users it would let the deploying account read everyone\'s history.')
param developerAccess bool = false

@description('Type of principalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param principalType string = 'User'

@description('Name of the chat model deployment: AZURE_OPENAI_CHAT_DEPLOYMENT.')
param chatDeploymentName string = 'chat'

@description('Chat model name.')
param chatModelName string = 'gpt-4o-mini'

@description('Chat model version.')
param chatModelVersion string = '2024-07-18'

@description('SKU of the chat model deployment.')
param chatDeploymentSkuName string = 'GlobalStandard'

@description('Capacity of the chat model deployment, in thousands of tokens per minute.')
@minValue(1)
param chatDeploymentCapacity int = 30

@description('Azure OpenAI data-plane API version the app calls (a GA version).')
param openAiApiVersion string = '2024-10-21'

@description('Whether the app trusts the x-ms-client-principal header. The deployment then needs authClientId (App Service authentication) or staticWebAppResourceId (a Static Web Apps linked backend), and fails without one.')
param trustClientPrincipal bool = false

@description('Client ID of the Microsoft Entra app registration that App Service authentication signs users in with and accepts tokens for. When set, the function app requires authentication on every route but /api/health and answers 401 to anonymous requests.')
param authClientId string = ''

@description('Tenant of that app registration; empty means the tenant of this deployment.')
param authTenantId string = ''

@description('Resource ID of an existing Static Web App (Standard plan) to link the function app to as its /api backend. Linking turns on App Service authentication with the Static Web App as its only identity provider. Not together with authClientId.')
param staticWebAppResourceId string = ''

@description('System prompt of the assistant; empty means the app default.')
param systemPrompt string = ''

@description('Functions auth level of the chat routes. function: callers send a function key. anonymous: only when a Static Web Apps linked backend or App Service authentication guards the app.')
@allowed([
  'function'
  'anonymous'
  'admin'
])
param authLevel string = 'function'

@description('Comma-separated origins a browser may call the API from directly (CORS); empty allows none.')
param allowedOrigins string = ''

@description('Tokens each conversation owner may use per UTC day; 0 is no quota.')
@minValue(0)
param dailyTokenQuota int = 0

@description('Comma-separated names the OpenAI-compatible door (/api/v1) accepts as `model` besides the deployment name; each is that one deployment.')
param modelAliases string = ''

@description('Refuse callers\' `instructions` and system/developer messages on /api/v1 (400). By default they are taken, after the server\'s own system prompt, which they cannot remove or replace.')
param refuseInstructions bool = false

@description('Most tokens of one answer, sent to the model as its output limit; empty is the app default (4,096 with a quota, no limit without one). A quota must be more than it.')
param maxAnswerTokens string = ''

@description('Seconds one model call may take. Behind a Static Web App keep it well under its 45-second limit per request.')
@minValue(1)
@maxValue(220)
param modelTimeoutSeconds int = 60

@description('Memory of each function app instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Most instances the function app scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Concurrent HTTP requests per instance. Python defaults to 1; the chat handlers are async and mostly wait on the model, so one instance serves many.')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 16

@description('Replication of the storage account that holds the chat history.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param storageSkuName string = 'Standard_GRS'

// Built-in role definitions: the same GUIDs in every tenant.
var cognitiveServicesOpenAIUserRoleId = '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd'
var storageTableDataContributorRoleId = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var storageBlobDataOwnerRoleId = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageQueueDataContributorRoleId = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var monitoringMetricsPublisherRoleId = '3913510d-42f4-4e42-8a64-420c390055eb'

// Trust in x-ms-client-principal only behind authentication this deployment configures: App Service
// authentication with Entra ID (authClientId), or a Static Web Apps link (staticWebAppResourceId),
// which sets up App Service authentication for the Static Web App. Never both: each writes the
// function app's authentication settings, and every provision would undo the other.
//
// A refused combination stops the deployment through ARM's own parameter validation: the function
// app module allows only 'none', 'appServiceAuthentication' and 'staticWebAppLink', and is given
// the reason instead, which the error quotes. ARM validates a module's parameters before it
// deploys anything of that module, so the function app never runs trusting a header anyone could
// forge. (Bicep's fail() would say it more directly, but checkov's Bicep parser cannot read it.)
var configuresAppServiceAuthentication = !empty(authClientId)
var linksStaticWebApp = !empty(staticWebAppResourceId)
var bothAuthenticationsRefused = 'AZURE_AUTH_CLIENT_ID and AZURE_STATIC_WEB_APP_ID are both set in azd environment ${environmentName}: set one of them. Linking a Static Web App configures the function app authentication itself.'
var unguardedTrustRefused = 'CHAT_TRUST_CLIENT_PRINCIPAL=true in azd environment ${environmentName} needs AZURE_AUTH_CLIENT_ID (App Service authentication with Entra ID) or AZURE_STATIC_WEB_APP_ID (a Static Web Apps linked backend): without either, anyone could forge x-ms-client-principal. See docs/deploy.md.'
var authentication = configuresAppServiceAuthentication && linksStaticWebApp ? bothAuthenticationsRefused : configuresAppServiceAuthentication ? 'appServiceAuthentication' : linksStaticWebApp ? 'staticWebAppLink' : trustClientPrincipal ? unguardedTrustRefused : 'none'
var authTenant = empty(authTenantId) ? tenant().tenantId : authTenantId
var authOpenIdIssuer = '${environment().authentication.loginEndpoint}${authTenant}/v2.0'
// The Static Web App's subscription, resource group and name, from its resource ID.
var staticWebAppIdParts = split(staticWebAppResourceId, '/')

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = 'func-${resourceToken}'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    skuName: storageSkuName
    deploymentContainerName: 'app-package-${resourceToken}'
  }
}

module openAi 'modules/openai.bicep' = {
  name: 'openai'
  scope: rg
  params: {
    name: 'oai-${resourceToken}'
    location: empty(openAiLocation) ? location : openAiLocation
    tags: tags
    chatDeploymentName: chatDeploymentName
    chatModelName: chatModelName
    chatModelVersion: chatModelVersion
    chatDeploymentSkuName: chatDeploymentSkuName
    chatDeploymentCapacity: chatDeploymentCapacity
  }
}

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    storageBlobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    chatStorageEndpoint: storage.outputs.tableEndpoint
    storageQueueEndpoint: storage.outputs.queueEndpoint
    backgroundQueueName: storage.outputs.backgroundQueueName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    openAiEndpoint: openAi.outputs.endpoint
    openAiChatDeployment: openAi.outputs.chatDeploymentName
    openAiApiVersion: openAiApiVersion
    trustClientPrincipal: trustClientPrincipal
    authentication: authentication
    authClientId: authClientId
    authOpenIdIssuer: authOpenIdIssuer
    systemPrompt: systemPrompt
    authLevel: authLevel
    allowedOrigins: allowedOrigins
    dailyTokenQuota: dailyTokenQuota
    maxAnswerTokens: maxAnswerTokens
    modelAliases: modelAliases
    refuseInstructions: refuseInstructions
    modelTimeoutSeconds: modelTimeoutSeconds
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
  }
  // The host reads its storage and package as the identity from the first start.
  dependsOn: [
    appBlobDataOwner
    appTableDataContributor
    appQueueDataContributor
  ]
}

module staticWebAppLink 'modules/static-web-app-link.bicep' = if (linksStaticWebApp) {
  name: 'static-web-app-link'
  // Both arguments hold even without a link, because ARM may read a skipped module's scope.
  scope: resourceGroup(linksStaticWebApp ? staticWebAppIdParts[2] : subscription().subscriptionId, linksStaticWebApp ? staticWebAppIdParts[4] : rg.name)
  params: {
    staticWebAppName: last(staticWebAppIdParts)
    backendResourceId: functionApp.outputs.id
    backendRegion: location
  }
}

// Roles of the app's identity: exactly what it uses, on the one resource it uses it on.

module appOpenAiUser 'modules/role-assignment.bicep' = {
  name: 'role-app-openai-user'
  scope: rg
  params: {
    targetKind: 'openAiAccount'
    targetName: openAi.outputs.name
    roleDefinitionId: cognitiveServicesOpenAIUserRoleId
    roleDescription: 'Cognitive Services OpenAI User: the chat app calls the model deployment.'
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
  }
}

// On the two chat tables only, the narrowest scope Azure RBAC offers for table data: the identity
// cannot read any other table of the account.
module appTableDataContributor 'modules/table-role-assignment.bicep' = {
  name: 'role-app-table-data-contributor'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    tableNames: storage.outputs.tableNames
    roleDefinitionId: storageTableDataContributorRoleId
    roleDescription: 'Storage Table Data Contributor: the chat app reads and writes this conversation table.'
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
  }
}

// On the account: the Functions host creates and leases its own containers (azure-webjobs-hosts,
// azure-webjobs-secrets) there, and Flex Consumption reads the deployment package from its
// container. The chat app keeps there, in its container `chatturns`, the turns too big for one
// Table transaction (docs/storage.md); the rest of the chat history is in tables, out of this role.
module appBlobDataOwner 'modules/role-assignment.bicep' = {
  name: 'role-app-blob-data-owner'
  scope: rg
  params: {
    targetKind: 'storageAccount'
    targetName: storage.outputs.name
    roleDefinitionId: storageBlobDataOwnerRoleId
    roleDescription: 'Storage Blob Data Owner: the Functions host storage and the deployment package container.'
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
  }
}

// On the account: the queue trigger reads the queue of background responses (chat-responses) and
// the Functions host moves a message that failed every try to its poison queue
// (chat-responses-poison), which it creates itself; the app sends to the first.
module appQueueDataContributor 'modules/role-assignment.bicep' = {
  name: 'role-app-queue-data-contributor'
  scope: rg
  params: {
    targetKind: 'storageAccount'
    targetName: storage.outputs.name
    roleDefinitionId: storageQueueDataContributorRoleId
    roleDescription: 'Storage Queue Data Contributor: the queue of background responses and its poison queue.'
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
  }
}

module appMetricsPublisher 'modules/role-assignment.bicep' = {
  name: 'role-app-metrics-publisher'
  scope: rg
  params: {
    targetKind: 'applicationInsights'
    targetName: monitoring.outputs.applicationInsightsName
    roleDefinitionId: monitoringMetricsPublisherRoleId
    roleDescription: 'Monitoring Metrics Publisher: the chat app sends telemetry with Entra ID auth.'
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
  }
}

// Roles of the deploying user, to run the app locally against the same resources: only when asked
// for, since azd fills principalId on every deployment and the table role reads every user's history.

module userOpenAiUser 'modules/role-assignment.bicep' = if (developerAccess && !empty(principalId)) {
  name: 'role-user-openai-user'
  scope: rg
  params: {
    targetKind: 'openAiAccount'
    targetName: openAi.outputs.name
    roleDefinitionId: cognitiveServicesOpenAIUserRoleId
    roleDescription: 'Cognitive Services OpenAI User: a developer runs the chat app locally.'
    principalId: principalId
    principalType: principalType
  }
}

module userTableDataContributor 'modules/table-role-assignment.bicep' = if (developerAccess && !empty(principalId)) {
  name: 'role-user-table-data-contributor'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    tableNames: storage.outputs.tableNames
    roleDefinitionId: storageTableDataContributorRoleId
    roleDescription: 'Storage Table Data Contributor: a developer runs the chat app locally.'
    principalId: principalId
    principalType: principalType
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_OPENAI_ENDPOINT string = openAi.outputs.endpoint
output AZURE_OPENAI_CHAT_DEPLOYMENT string = openAi.outputs.chatDeploymentName
output AZURE_OPENAI_API_VERSION string = openAiApiVersion
output CHAT_STORAGE_ENDPOINT string = storage.outputs.tableEndpoint
output AZURE_STORAGE_ACCOUNT string = storage.outputs.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_URL string = functionApp.outputs.url
output SERVICE_API_ENDPOINTS array = [
  functionApp.outputs.url
]
output AZURE_CLIENT_ID string = identity.outputs.clientId
